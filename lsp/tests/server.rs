//! The server over its transport: settings from the client, and documents it was not given.

mod support;

use serde_json::{Value, json};
use support::client::Client;

const URI: &str = "file:///mlp.nn";
const MLP: &str = "model Mlp {\n    input [B, 64]\n    linear(32)\n    relu\n    linear(10)\n}\n";

async fn hint_labels(client: &mut Client) -> Vec<String> {
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}});
    let hints = client.request("textDocument/inlayHint", json!({"textDocument": {"uri": URI}, "range": whole})).await;
    hints.as_array().unwrap().iter().map(|h| h["label"].as_str().unwrap().to_string()).collect()
}

async fn settings_session() {
    let mut client = Client::start().await;
    let init = json!({"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": {"inlayHints": "shapes"}});
    client.request("initialize", init).await;
    client.notify("initialized", json!({})).await;
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": URI, "languageId": "nn", "version": 1, "text": MLP}}),
        )
        .await;
    assert_eq!(hint_labels(&mut client).await, ["[B, 64] → [B, 10]", "[B, 32]", "[B, 32]", "[B, 10]"]);
    // A file on disk that the editor never opened has nothing to show, and an opened one is
    // answered from the editor's text, not the file's: the server does not read files.
    answers_from_the_editor_only(&mut client).await;
    client.notify("workspace/didChangeConfiguration", json!({"settings": {"nnc": {"inlayHints": "params"}}})).await;
    assert_eq!(hint_labels(&mut client).await, ["2,410 params", "2,080 params", "330 params"]);
    client.notify("workspace/didChangeConfiguration", json!({"settings": {"nnc": {"inlayHints": "none"}}})).await;
    assert_eq!(hint_labels(&mut client).await, Vec::<String>::new());
    // After closing, the document's diagnostics are cleared and its requests answer nothing.
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": URI}})).await;
    let cleared = client
        .wait(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == URI
                && m["params"]["version"].is_null()
        })
        .await;
    assert_eq!(cleared["params"]["diagnostics"], json!([]));
    assert_eq!(client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": URI}})).await, Value::Null);
    assert_eq!(client.request("shutdown", Value::Null).await, Value::Null);
}

/// Writes a model to a real file and asks about it before and after opening it with other
/// text. A server that read files would hover, outline and hint the file's `linear(32)`.
async fn answers_from_the_editor_only(client: &mut Client) {
    let dir = std::env::temp_dir().join(format!("nnc-lsp-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("on_disk.nn");
    std::fs::write(&path, MLP).unwrap();
    let uri = format!("file://{}", path.display());
    let document = json!({"uri": uri});
    let at_linear = json!({"textDocument": document, "position": {"line": 2, "character": 5}});
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}});
    let hints = json!({"textDocument": document, "range": whole});
    assert_eq!(client.request("textDocument/hover", at_linear.clone()).await, Value::Null);
    assert_eq!(client.request("textDocument/documentSymbol", json!({"textDocument": document})).await, Value::Null);
    assert_eq!(client.request("textDocument/inlayHint", hints.clone()).await, Value::Null);

    let edited = MLP.replace("linear(32)", "linear(16)");
    let open = json!({"textDocument": {"uri": uri, "languageId": "nn", "version": 1, "text": edited}});
    client.notify("textDocument/didOpen", open).await;
    let labels: Vec<String> = client
        .request("textDocument/inlayHint", hints)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["[B, 64] → [B, 10]", "[B, 16]", "[B, 16]", "[B, 10]"], "hints of the editor's text");
    client.notify("textDocument/didClose", json!({"textDocument": document})).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inlay_hints_follow_the_client_settings() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(settings_session());
}
