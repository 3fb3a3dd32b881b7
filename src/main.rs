//! Thin entry: everything happens in `rowstream::main` (CLI → config → telemetry → run → exit
//! code). Exit codes: 0 success, 1 runtime failure or failed check, 2 invalid config or usage.
fn main() -> std::process::ExitCode {
    rowstream::main()
}
