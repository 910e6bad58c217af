//! A TCP proxy in front of PostgreSQL that a test can cut: "the database
//! went away" as a client sees it (connections reset, new ones refused);
//! or silence: the open connections stop answering, as through a
//! middlebox that lost their state, while new ones pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    silences: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (silences, _) = watch::channel(0u64);
        let (accept_up, accept_cuts, accept_silences) =
            (up.clone(), cuts.clone(), silences.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let mut cut = accept_cuts.subscribe();
                let mut silence = accept_silences.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                        // Both sockets stay open, nothing moves, until a cut.
                        _ = silence.changed() => { let _ = cut.changed().await; }
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            cuts,
            silences,
        }
    }

    /// Resets every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Every open connection stops forwarding (bytes are taken, none
    /// passed on, nothing closed); connections opened later pass.
    pub fn silence(&self) {
        self.silences.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
