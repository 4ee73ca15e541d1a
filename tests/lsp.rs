//! End-to-end test of `nnc lsp`: the real binary driven over stdio with Content-Length
//! framing, through a whole editing session. Every wait has a deadline, so a server that
//! stops answering fails the test instead of hanging it.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);
const URI: &str = "file:///work/examples/digits_cnn.nn";

/// A client speaking to a running `nnc lsp`.
struct Session {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Messages received while waiting for others.
    pending: Vec<Value>,
    next_id: i64,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The server may already have exited; killing it again is harmless.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one framed message: headers up to a blank line, then `Content-Length` bytes.
fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Session {
    fn start() -> Session {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nnc lsp starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        Session { child, stdin, messages, pending: Vec::new(), next_id: 0 }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("the server reads its input");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and waits for its response, keeping other messages for later.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let response =
            self.wait(&format!("the response to {method}"), |m| m["id"] == json!(id) && m.get("method").is_none());
        assert!(response.get("error").is_none(), "{method} failed: {response}");
        response["result"].clone()
    }

    /// The first message, received or pending, for which `wanted` holds.
    fn wait(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.pending.iter().position(&wanted) {
            return self.pending.remove(index);
        }
        let started = Instant::now();
        loop {
            let left = DEADLINE.checked_sub(started.elapsed()).unwrap_or_default();
            match self.messages.recv_timeout(left) {
                Ok(message) if wanted(&message) => return message,
                Ok(message) => self.pending.push(message),
                Err(RecvTimeoutError::Timeout) => panic!("no {what} within {DEADLINE:?}; got {:#?}", self.pending),
                Err(RecvTimeoutError::Disconnected) => panic!("the server closed its output before {what}"),
            }
        }
    }

    /// The diagnostics published for `version` of the document.
    fn diagnostics(&mut self, version: i64) -> Vec<Value> {
        let message = self.wait(&format!("diagnostics of version {version}"), |m| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["version"] == json!(version)
        });
        message["params"]["diagnostics"].as_array().cloned().unwrap_or_default()
    }
}

fn labels(hints: &Value) -> Vec<(u64, String)> {
    hints
        .as_array()
        .expect("hints are a list")
        .iter()
        .map(|h| (h["position"]["line"].as_u64().unwrap(), h["label"].as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn an_editing_session_over_stdio() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits_cnn.nn")).unwrap();
    let mut session = Session::start();
    let capabilities = json!({
        "textDocument": {"publishDiagnostics": {"relatedInformation": true}},
    });
    let initialized =
        session.request("initialize", json!({"processId": null, "rootUri": null, "capabilities": capabilities}));
    assert_eq!(initialized["serverInfo"]["name"], "nnc");
    assert_eq!(initialized["capabilities"]["textDocumentSync"]["change"], 2, "incremental sync");
    session.notify("initialized", json!({}));

    session.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "nn", "version": 1, "text": text}}),
    );
    assert_eq!(session.diagnostics(1), Vec::<Value>::new(), "the example checks without diagnostics");

    // A hint on the header and on every layer line.
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 100, "character": 0}});
    let hints = session.request("textDocument/inlayHint", json!({"textDocument": {"uri": URI}, "range": whole}));
    let hints = labels(&hints);
    assert_eq!(hints.len(), 10, "{hints:?}");
    assert!(hints.contains(&(1, "[B, 64] → [B, 10] · 1,898 params".to_string())), "{hints:?}");
    assert!(hints.contains(&(4, "[B, 8, 8, 8] · 80 params".to_string())), "{hints:?}");
    assert!(hints.contains(&(11, "[B, 10] · 650 params".to_string())), "{hints:?}");

    let hover = session
        .request("textDocument/hover", json!({"textDocument": {"uri": URI}, "position": {"line": 4, "character": 6}}));
    let markdown = hover["contents"]["value"].as_str().expect("markdown hover");
    assert!(markdown.contains("80 params (72 weights + 8 biases)"), "{markdown}");

    let completion = session.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": URI}, "position": {"line": 6, "character": 4}}),
    );
    let items = completion.as_array().expect("a list of completions");
    assert!(items.iter().any(|item| item["label"] == "linear"), "{completion}");

    // Break a shape on line 3: `reshape(1, 8, 9)` needs 72 features, the input has 64.
    let nine = json!({"start": {"line": 3, "character": 18}, "end": {"line": 3, "character": 19}});
    session.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"range": nine, "text": "9"}]}),
    );
    let broken = session.diagnostics(2);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0]["range"]["start"]["line"], 3, "{broken:?}");
    assert_eq!(broken[0]["severity"], 1);

    // And fix it again: the error goes away.
    let nine = json!({"start": {"line": 3, "character": 18}, "end": {"line": 3, "character": 19}});
    session.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [{"range": nine, "text": "8"}]}),
    );
    assert_eq!(session.diagnostics(3), Vec::<Value>::new());

    // Formatting: the example is formatted already; after an edit that spoils its layout,
    // one edit puts the whole text back.
    let formatting = json!({"textDocument": {"uri": URI}, "options": {"tabSize": 4, "insertSpaces": true}});
    assert_eq!(session.request("textDocument/formatting", formatting.clone()), Value::Null);
    let relu = json!({"start": {"line": 5, "character": 0}, "end": {"line": 5, "character": 4}});
    session.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 4}, "contentChanges": [{"range": relu, "text": ""}]}),
    );
    let edits = session.request("textDocument/formatting", formatting);
    let edits = edits.as_array().expect("one edit");
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0]["newText"].as_str(), Some(text.as_str()));

    assert_eq!(session.request("shutdown", Value::Null), Value::Null);
    session.notify("exit", Value::Null);
    let started = Instant::now();
    loop {
        if let Some(status) = session.child.try_wait().expect("the server's status") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the server did not exit after `exit`");
        std::thread::sleep(Duration::from_millis(20));
    }
}
