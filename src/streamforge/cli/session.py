"""``streamforge session switch|unpin``: manual control of a live channel.

Like ``streamforge sessions`` these talk to the running server's API
(``--url``, default ``http://127.0.0.1:{port}`` from the settings) with the
admin password (``STREAMFORGE_ADMIN_PASSWORD`` or a prompt).
"""

from __future__ import annotations

from typing import Any

import typer

from streamforge.cli.common import console, fail, one_line_errors, prompt_secret, settings

app = typer.Typer(help="Control a live channel session.", no_args_is_help=True)

UrlOption = typer.Option(None, help="StreamForge base URL (default: from settings).")


def _post(url: str | None, path: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    import httpx

    config = settings()
    base = (url or f"http://127.0.0.1:{config.port}").rstrip("/")
    password = config.admin_password or prompt_secret("Admin password")
    try:
        answer = httpx.post(f"{base}{path}", json=body, auth=("admin", password), timeout=10)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach StreamForge at {base}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        try:
            message = str(answer.json().get("error") or answer.text)
        except ValueError:
            message = answer.text
        raise fail(f"{answer.status_code}: {message[:300]}")
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _report(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        pinned = " (pinned)" if row.get("pinned") else ""
        stream = row.get("stream") or "—"
        console.print(
            f"{row['guide_number']} {row['channel']}: {stream} ({row.get('account') or '—'})"
            f"{pinned}",
            highlight=False,
        )


@app.command("switch")
@one_line_errors
def switch(
    channel: str = typer.Argument(..., help="The channel's GuideNumber, e.g. 101."),
    stream: str | None = typer.Option(
        None, "--stream", help="The stream to play and pin: account/stream id, e.g. alpha/102."
    ),
    next_: bool = typer.Option(False, "--next", help="Switch to the next stream of the channel."),
    url: str | None = UrlOption,
) -> None:
    """Switch a live channel to a chosen stream (pinned) or to the next one, seamlessly."""
    if (stream is None) == (not next_):
        raise fail("give either --stream ACCOUNT/ID or --next", 2)
    body: dict[str, Any] = {"next": True} if next_ else {"stream": stream}
    _report(_post(url, f"/api/v1/sessions/{channel}/switch", body))


@app.command("unpin")
@one_line_errors
def unpin(
    channel: str = typer.Argument(..., help="The channel's GuideNumber, e.g. 101."),
    url: str | None = UrlOption,
) -> None:
    """Let a live channel upgrade away from the stream it was pinned to."""
    _report(_post(url, f"/api/v1/sessions/{channel}/unpin"))
