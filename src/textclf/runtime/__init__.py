"""What the code runs on: CPU threads and bf16 support read from the machine, structured JSON logs, and
local server processes (free port, wait for HTTP, stop)."""
