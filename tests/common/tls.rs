//! TLS for the tests: a CA and a server certificate made with the `openssl` command (Kafka
//! serves them itself, as a PEM key store; see `Broker::start_tls`).

use std::path::PathBuf;
use std::process::Command;

/// A CA and a server certificate for 127.0.0.1 signed by it, and a second, unrelated CA, in
/// `dir` (readable by the server's user): (ca, server cert, server key, other ca).
pub fn tls_files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-subj",
            &format!("/CN={ca}"),
        ]);
    }
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let ok = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success());
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("other-ca.pem"),
    )
}
