//! A client of an in-memory server over the real transport (Content-Length framing on an
//! in-memory pipe), for tests that drive whole sessions.

use nnc_lsp::DocumentStore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, WriteHalf};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const DEADLINE: Duration = Duration::from_secs(20);

/// A client talking to an in-memory server.
pub struct Client {
    pub writer: WriteHalf<DuplexStream>,
    pub incoming: UnboundedReceiver<Value>,
    /// Messages received while waiting for others.
    pub pending: Vec<Value>,
    /// The newest version whose diagnostics arrived, per document.
    pub diagnosed: HashMap<String, i64>,
    pub documents: Arc<DocumentStore>,
    pub next_id: i64,
}

impl Client {
    pub async fn start() -> Client {
        let (client_side, server_side) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server_side);
        let (service, socket) = nnc_lsp::service();
        let documents = service.documents();
        tokio::spawn(nnc_lsp::serve(service, socket, server_read, server_write));
        let (client_read, writer) = tokio::io::split(client_side);
        let (sender, incoming) = unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(client_read);
            loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    match line.trim_end().strip_prefix("Content-Length:") {
                        Some(value) => length = value.trim().parse().expect("a length"),
                        None if line.trim_end().is_empty() => break,
                        None => {}
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                if sender.send(serde_json::from_slice(&body).expect("the server sends JSON")).is_err() {
                    return;
                }
            }
        });
        Client { writer, incoming, pending: Vec::new(), diagnosed: HashMap::new(), documents, next_id: 0 }
    }

    pub async fn send(&mut self, message: Value) {
        let body = message.to_string();
        let framed = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.writer.write_all(framed.as_bytes()).await.expect("the server reads");
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    /// Waits for the first message, received or pending, that `wanted` accepts; others are
    /// kept for later.
    pub async fn wait(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.pending.iter().position(&wanted) {
            return self.pending.remove(index);
        }
        loop {
            let message = tokio::time::timeout(DEADLINE, self.incoming.recv())
                .await
                .expect("the server answers in time")
                .expect("the server is still running");
            // Diagnostics of an open document name its version (clearing them on close does
            // not), and never come after those of a newer version.
            if message["method"] == "textDocument/publishDiagnostics"
                && let Some(version) = message["params"]["version"].as_i64()
            {
                let uri = message["params"]["uri"].as_str().unwrap_or_default().to_string();
                let last = self.diagnosed.entry(uri).or_default();
                assert!(version > *last, "diagnostics of version {version} after {last}");
                *last = version;
            }
            if wanted(&message) {
                return message;
            }
            self.pending.push(message);
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        let response = self.wait(|m| m["id"] == json!(id) && m.get("method").is_none()).await;
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }
}
