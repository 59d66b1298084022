"""``streamforge mock-provider``: run the mock panel and steer it from a shell.

``serve`` runs a panel in the foreground and prints ``READY <base_url>`` on stdout once
it listens (scripts and :class:`~.server.MockProviderProcess` wait for that line).
``fault``, ``recover``, ``quirk``, ``clear-quirks``, ``kill`` and ``stats`` talk to a
running panel's ``/_control`` API at ``--url``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import typer

from streamforge.errors import ConfigError, ProviderError
from streamforge.mockprovider.catalog import Catalog
from streamforge.mockprovider.config import ProviderConfig
from streamforge.mockprovider.connections import LimitMode
from streamforge.mockprovider.faults import ApiQuirk, Fault, FaultKind, QuirkKind
from streamforge.mockprovider.remote import ControlClient
from streamforge.mockprovider.server import MockProvider

app = typer.Typer(help="A fault-injecting mock Xtream Codes panel serving real MPEG-TS.")

DEFAULT_URL = "http://127.0.0.1:8080"
UrlOption = typer.Option(DEFAULT_URL, "--url", help="Base URL of the running mock panel.")


_FLOAT_FIELDS = frozenset({"after", "delay", "token_ttl", "factor", "period"})


def parse_fault_spec(spec: str) -> tuple[int, Fault]:
    """``ID:KIND[:key=value…]`` e.g. ``101:stall:after=5``, ``102:status:status=404:times=1``
    or ``103:slow:factor=0.6``."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0].isdigit():
        raise ConfigError(f"fault spec {spec!r}: expected ID:KIND[:key=value...]")
    values: dict[str, Any] = {"kind": parts[1]}
    for item in parts[2:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"fault spec {spec!r}: {item!r} is not key=value")
        values[key] = float(value) if key in _FLOAT_FIELDS else int(value)
    return int(parts[0]), Fault.from_dict(values)


async def _run(provider: MockProvider) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with provider:
        typer.echo(f"READY {provider.base_url}")
        for line in account_lines(provider.state.catalog):
            typer.echo(line)
        await stop.wait()


def account_lines(catalog: Catalog) -> list[str]:
    """What a tester types into StreamForge: each account's username and password
    (test-panel credentials, printed on purpose), state and connection limit."""
    lines = [f"{len(catalog.accounts)} account(s):"]
    for account in catalog.accounts:
        lines.append(
            f"  username {account.username}  password {account.password}  "
            f"({account.effective_status().value}, {account.max_connections} connection(s))"
        )
    return lines


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8080, help="Port to bind (0: any free port)."),
    config: Path | None = typer.Option(None, "--config", help="JSON or TOML config file."),
    seed_demo: bool = typer.Option(False, "--seed-demo", help="Serve Catalog.demo()."),
    synthetic: int = typer.Option(0, "--synthetic", help="Serve N synthetic streams."),
    seed: int = typer.Option(1, help="Seed of the synthetic catalogue."),
    cache_dir: Path | None = typer.Option(None, help="Where encoded test media is cached."),
    limit_mode: LimitMode | None = typer.Option(None, help="What happens past max_connections."),
    fault: list[str] = typer.Option([], help="Fault at start: ID:KIND[:key=value...]."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log each request (passwords masked)."
    ),
) -> None:
    """Run a mock panel until interrupted (prints its accounts; -v logs each request)."""
    logging.basicConfig(level=logging.WARNING)
    # Set on the panel's logger: the root logger may be configured already (by
    # `streamforge`), when basicConfig does nothing.
    logging.getLogger("streamforge.mockprovider").setLevel(
        logging.INFO if verbose else logging.WARNING
    )
    try:
        cfg = ProviderConfig.load(config) if config else ProviderConfig(Catalog.demo())
        catalog = cfg.catalog
        if synthetic:
            catalog = Catalog.synthetic(synthetic, seed=seed)
        elif seed_demo:
            catalog = Catalog.demo()
        faults = dict(cfg.faults)
        faults.update(parse_fault_spec(spec) for spec in fault)
        provider = MockProvider(
            catalog,
            host=host,
            port=port,
            cache_dir=cache_dir,
            profiles=cfg.profiles,
            limit_mode=limit_mode or cfg.limit_mode,
            faults=faults,
            quirks=cfg.quirks,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    asyncio.run(_run(provider))


def _client(url: str) -> ControlClient:
    try:
        return ControlClient(url)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _control(action: str, call: Any) -> Any:
    try:
        return call()
    except (ProviderError, ConfigError) as exc:
        typer.echo(f"error: {action}: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("fault")
def fault_cmd(
    stream_id: int = typer.Argument(..., help="Stream id."),
    kind: FaultKind = typer.Argument(..., help="Fault kind."),
    after: float = typer.Option(0.0, help="Seconds of healthy streaming before it fires."),
    status: int = typer.Option(503, help="HTTP status for kind=status."),
    delay: float = typer.Option(5.0, help="Seconds before headers for kind=slow_headers."),
    rate: int = typer.Option(16, help="Bytes per second for kind=drip."),
    token_ttl: float = typer.Option(3.0, help="Token lifetime for kind=redirect."),
    times: int | None = typer.Option(None, help="Apply to this many connections, then heal."),
    factor: float = typer.Option(0.6, help="Fraction of real time delivered for kind=slow."),
    period: float = typer.Option(4.0, help="Seconds between bursts for kind=bursty."),
    url: str = UrlOption,
) -> None:
    """Make a stream misbehave.

    Media faults (black, frozen, card, silent, no_video, no_audio) and delivery faults
    (slow, bursty) also hit the connections already playing, from ``--after`` seconds
    on; ``recover`` returns those to normal.
    """
    try:
        spec = Fault(
            kind,
            after=after,
            status=status,
            delay=delay,
            rate=rate,
            token_ttl=token_ttl,
            times=times,
            factor=factor,
            period=period,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _control("fault", lambda: _client(url).set_fault(stream_id, spec))
    typer.echo(f"stream {stream_id}: {kind.value}")


@app.command()
def recover(
    stream_id: int | None = typer.Argument(None, help="Stream id (omit: all, and quirks too)."),
    url: str = UrlOption,
) -> None:
    """Make a stream (or everything) healthy again."""
    _control("recover", lambda: _client(url).recover(stream_id))
    typer.echo("recovered" if stream_id is None else f"stream {stream_id}: recovered")


@app.command()
def quirk(
    kind: QuirkKind = typer.Argument(..., help="Quirk kind."),
    account: str | None = typer.Option(None, help="Only this username."),
    target: list[str] = typer.Option([], help="Only these calls (e.g. get_live_streams)."),
    delay: float = typer.Option(5.0, help="Seconds for slow_headers."),
    status: int = typer.Option(503, help="HTTP status for kind=status."),
    times: int | None = typer.Option(None, help="Apply this many times, then stop."),
    url: str = UrlOption,
) -> None:
    """Make the catalogue API misbehave."""
    try:
        spec = ApiQuirk(
            kind,
            account=account,
            targets=frozenset(target),
            delay=delay,
            status=status,
            times=times,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _control("quirk", lambda: _client(url).add_quirk(spec))
    typer.echo(f"quirk {kind.value} added")


@app.command("clear-quirks")
def clear_quirks(url: str = UrlOption) -> None:
    """Remove every API quirk."""
    _control("clear-quirks", lambda: _client(url).clear_quirks())
    typer.echo("quirks cleared")


@app.command()
def kill(
    stream_id: int = typer.Argument(..., help="Stream id."),
    reset: bool = typer.Option(False, help="Send TCP RST instead of a plain close."),
    url: str = UrlOption,
) -> None:
    """Abort the open connections of a stream."""
    killed = _control("kill", lambda: _client(url).kill(stream_id, reset=reset))
    typer.echo(f"killed {killed} connection(s)")


@app.command()
def stats(
    url: str = UrlOption,
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
) -> None:
    """Show open connections per stream and account, and recent closes."""
    snapshot = _control("stats", lambda: _client(url).stats(None if as_json else 200))
    if as_json:
        typer.echo(json.dumps(snapshot.to_dict(), indent=2))
        return
    typer.echo(
        f"opened {snapshot.total_opened}, closed {snapshot.total_closed}, "
        f"open now {len(snapshot.open)}"
    )
    for account, count in sorted(snapshot.per_account().items()):
        typer.echo(f"  account {account}: {count} open")
    for stream_id, count in sorted(snapshot.per_stream().items()):
        typer.echo(f"  stream {stream_id}: {count} open")
    for event in snapshot.closes()[-10:]:
        typer.echo(
            f"  closed #{event.conn_id} stream {event.stream_id} ({event.account}): "
            f"{event.reason}, {event.bytes_sent} bytes"
        )
