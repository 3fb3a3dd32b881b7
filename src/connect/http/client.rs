//! The client half of rowstream's own HTTP listener: one call to it (a worker passing a REST
//! call on to the worker that runs the connector; `rowstream snapshot`; `rowstream health`).
//!
//! Written by hand rather than with a client crate: one request, `Connection: close`, to
//! rowstream's own server, which always answers with a Content-Length body.

use crate::config::reachable;
use std::time::Duration;

/// One HTTP/1.1 call to a rowstream listener (`rowstream snapshot`; a worker passing a call on
/// to the worker running the connector): the status code and body, or why there is none.
/// Written by hand rather than with a client crate: one request, `Connection: close`, to
/// rowstream's own server, which always answers with a Content-Length body.
pub(crate) async fn call(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = reachable(addr);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let io = async {
        let mut c = tokio::net::TcpStream::connect(&addr).await?;
        c.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await?;
        Ok::<_, std::io::Error>(resp)
    };
    let resp = match tokio::time::timeout(Duration::from_secs(60), io).await {
        Ok(Ok(r)) => String::from_utf8_lossy(&r).into_owned(),
        Ok(Err(e)) => return Err(format!("cannot reach {addr}: {e}")),
        Err(_) => return Err(format!("no answer from {addr} within 60 s")),
    };
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr} answered something other than HTTP"))?;
    Ok((code, body.to_string()))
}

/// The client half of `POST /snapshot`, for `rowstream snapshot`: the server's answer, or why
/// there is none.
pub(crate) async fn request_snapshot(listen: &str, tables: &[String]) -> Result<String, String> {
    let body = serde_json::json!({ "tables": tables }).to_string();
    match call(listen, "POST", "/snapshot", &[], &body).await {
        Ok((202, body)) => Ok(body.trim().to_string()),
        Ok((_, body)) => Err(body.trim().to_string()),
        Err(e) => Err(format!("the running rowstream at admin.listen: {e}\n  fix: start `rowstream run` with this config first (admin.listen must be set)")),
    }
}

/// `rowstream health`: asks the admin listener at `listen` for `/health` (or `/ready`); the
/// answer's body when it is 200, else why not. For container health checks, which have no
/// shell or curl in rowstream's image.
pub(crate) async fn probe(listen: &str, ready: bool) -> Result<String, String> {
    let path = if ready { "/ready" } else { "/health" };
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        call(listen, "GET", path, &[], ""),
    )
    .await
    {
        Ok(Ok((200, body))) => Ok(body.trim().to_string()),
        Ok(Ok((code, body))) => Err(format!("{path} answered {code}: {}", body.trim())),
        Ok(Err(e)) => Err(format!("no answer from {listen}{path}: {e}\n  fix: check that rowstream runs with admin.listen = \"{listen}\"")),
        Err(_) => Err(format!("no answer from {listen}{path} within 5 s")),
    }
}
