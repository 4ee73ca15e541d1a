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
    client.notify("workspace/didChangeConfiguration", json!({"settings": {"nnc": {"inlayHints": "params"}}})).await;
    assert_eq!(hint_labels(&mut client).await, ["2,410 params", "2,080 params", "330 params"]);
    client.notify("workspace/didChangeConfiguration", json!({"settings": {"nnc": {"inlayHints": "none"}}})).await;
    assert_eq!(hint_labels(&mut client).await, Vec::<String>::new());
    // A document that was never opened has nothing to show; the server does not read files.
    let other = json!({"textDocument": {"uri": "file:///elsewhere.nn"}, "position": {"line": 0, "character": 0}});
    assert_eq!(client.request("textDocument/hover", other).await, Value::Null);
    // After closing, the document's diagnostics are cleared and its requests answer nothing.
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": URI}})).await;
    let cleared =
        client.wait(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["version"].is_null()).await;
    assert_eq!(cleared["params"]["diagnostics"], json!([]));
    assert_eq!(client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": URI}})).await, Value::Null);
    assert_eq!(client.request("shutdown", Value::Null).await, Value::Null);
}

#[test]
fn inlay_hints_follow_the_client_settings() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(settings_session());
}
