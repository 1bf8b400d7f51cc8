//! Build script: lets tauri-build generate the app context from tauri.conf.json.
fn main() {
    tauri_build::build()
}
