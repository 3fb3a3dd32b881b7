//! TLS for the tests: a CA and a server certificate made with the `openssl` command, and a
//! TLS-terminating proxy in front of a plain TCP service (tansu serves no TLS, so Kafka over TLS
//! is tested through it: the broker advertises the proxy's port).

use std::path::PathBuf;
use std::process::Command;
use tokio::net::{TcpListener, TcpStream};

/// Accept TLS on a free port (certificate `cert`, key `key`, PEM) and forward the plain bytes to
/// `target`; returns the port. Runs until the test's runtime ends.
pub async fn tls_proxy(target: &str, cert: &std::path::Path, key: &std::path::Path) -> u16 {
    let id = native_tls::Identity::from_pkcs8(
        &std::fs::read(cert).unwrap(),
        &std::fs::read(key).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(id).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let target = target.to_string();
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                // a client that does not trust the certificate ends the handshake: nothing to forward
                let Ok(mut a) = acceptor.accept(a).await else {
                    return;
                };
                if let Ok(mut b) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    });
    port
}

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
