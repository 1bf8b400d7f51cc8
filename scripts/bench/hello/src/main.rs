//! A bare Tauri window showing one line of text: the benchmark's baseline.

/// Same hook as the Keywarden app: the page calls it once painted.
#[tauri::command]
fn painted() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    eprintln!("first-paint-unix-ms {ms}");
}

fn main() {
    if let Err(e) = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![painted])
        .run(tauri::generate_context!())
    {
        eprintln!("bench-hello: {e}");
        std::process::exit(1);
    }
}
