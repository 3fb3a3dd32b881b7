//! A TCP proxy in front of a database, to play a server restart from rowstream's side: `down`
//! cuts every connection and refuses new ones (the port is closed), `up` accepts again on the
//! same port.

use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub port: u16,
    target: String,
    listener: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mut p = Proxy {
            port,
            target: target.to_string(),
            listener: None,
            conns: Default::default(),
        };
        p.serve(l);
        p
    }

    fn serve(&mut self, l: TcpListener) {
        let target = self.target.clone();
        let conns = self.conns.clone();
        self.listener = Some(tokio::spawn(async move {
            while let Ok((mut a, _)) = l.accept().await {
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut b) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    }
                });
                conns.lock().unwrap().push(h);
            }
        }));
    }

    /// Cut every connection and close the port (connections are refused).
    pub fn down(&mut self) {
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Accept again on the same port.
    pub async fn up(&mut self) {
        let l = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(l);
    }
}
