"""The one place exit statuses and error codes live, so every verb fails the same way."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_ENV = 3
EXIT_TIMEOUT = 124

# error code -> exit status (contract v1 table)
CODES: dict[str, int] = {
    "bad_usage": EXIT_BAD_INPUT,
    "bad_task_id": EXIT_BAD_INPUT,
    "duplicate_task_id": EXIT_BAD_INPUT,
    "unknown_task": EXIT_BAD_INPUT,
    "bad_label": EXIT_BAD_INPUT,
    "model_not_allowed": EXIT_BAD_INPUT,
    "bad_prompt_file": EXIT_BAD_INPUT,
    "bad_text_file": EXIT_BAD_INPUT,
    "bad_cwd": EXIT_BAD_INPUT,
    "bad_argv": EXIT_BAD_INPUT,
    "bad_config": EXIT_BAD_INPUT,
    "not_running": EXIT_BAD_INPUT,
    "not_supported": EXIT_BAD_INPUT,
    "tmux_missing": EXIT_ENV,
    "tmux_too_old": EXIT_ENV,
    "tmux_unreachable": EXIT_ENV,
    "state_dir_unusable": EXIT_ENV,
    "internal": EXIT_INTERNAL,
}


class DispatchError(Exception):
    """A refusal or failure with a contract error code, a one-line message and an exit status."""

    def __init__(self, code: str, message: str, exit_status: int | None = None) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_status = CODES.get(code, EXIT_INTERNAL) if exit_status is None else exit_status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
