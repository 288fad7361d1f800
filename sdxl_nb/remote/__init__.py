"""Remote backends: ComfyUI servers (export and run) and Lambda Cloud GPU lifecycle; no torch."""
