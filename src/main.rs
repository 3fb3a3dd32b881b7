//! Thin entry: everything happens in `rowstream::main` (CLI → config → telemetry → run → exit
//! code). Exit codes: 0 success, 1 runtime failure or failed check, 2 invalid config or usage.
/// mimalloc, not glibc's malloc: the decoders, the encoder and librdkafka allocate per value,
/// per record and per header, and glibc's malloc and free took a third of the instructions of
/// a streamed change.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rowstream::main()
}
