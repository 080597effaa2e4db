"""``manage.py telnyx_sandbox``: a local, stateful stand-in for the Telnyx API v2.

Prints one JSON "ready" line on stdout once it listens (``devserver.sandbox.control``
reads it); everything else goes to stderr through logging. SIGTERM or SIGINT stop it
cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devserver.sandbox import faults
from devserver.sandbox.config import DEFAULT_API_KEY, SandboxConfig
from devserver.sandbox.faults import FaultRule
from devserver.sandbox.rtc.audio import AudioSettings
from devserver.sandbox.rtc.auto import parse_delay
from devserver.sandbox.webhooks import WebhookSettings

EPILOG = f"{faults.SYNTAX}\noperations: {', '.join(faults.OPERATIONS)}\n"


def _fault(text: str) -> FaultRule:
    try:
        return FaultRule.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _agents(text: str) -> float | None:
    """``--agents``: ``browsers`` (None) or ``auto[:DELAY]`` (seconds, default 0.2)."""
    mode, _, delay = text.partition(":")
    if mode == "browsers" and not delay:
        return None
    if mode == "auto":
        try:
            return parse_delay(float(delay) if delay else 0.2)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected browsers or auto[:SECONDS], got {text!r}")


class Command(BaseCommand):
    """Run the Telnyx sandbox in the foreground."""

    help = (
        "Run a local Telnyx API v2 sandbox (credentials, connections, calls, webhooks, faults)"
        " and its WebRTC signalling (/rtc) with a simulated customer."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Keep the fault-syntax epilog laid out as written."""
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", EPILOG)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        """The sandbox's flags."""
        d = WebhookSettings()
        parser.add_argument(
            "--host", default="127.0.0.1", help="bind address (default %(default)s)"
        )
        parser.add_argument(
            "--port", type=int, default=0, help="port; 0 picks a free one (default)"
        )
        parser.add_argument(
            "--api-key", default=DEFAULT_API_KEY, help="bearer key clients must send"
        )
        parser.add_argument(
            "--credential-limit",
            type=int,
            default=5,
            help="telephony credentials per account (default 5)",
        )
        parser.add_argument(
            "--from-number", default="+15550001111", help="E.164 number to dial from"
        )
        parser.add_argument(
            "--connection-id", default=None, help="id of the seeded credential connection"
        )
        parser.add_argument(
            "--call-connection-id", default=None, help="id of the seeded Call Control app"
        )
        parser.add_argument(
            "--latency-ms", type=int, default=0, help="latency added to every operation"
        )
        parser.add_argument(
            "--fault",
            type=_fault,
            action="append",
            default=[],
            metavar="RULE",
            help="fault rule (below)",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="random seed for fault error rates"
        )
        parser.add_argument(
            "--webhook-url", default=None, help="webhook URL for calls dialled without one"
        )
        parser.add_argument(
            "--initiated-after",
            type=float,
            default=d.initiated_after,
            help="seconds to call.initiated",
        )
        parser.add_argument(
            "--answer-after",
            type=float,
            default=d.answer_after,
            help="seconds to answer (default 1.0)",
        )
        parser.add_argument(
            "--talk-time", type=float, default=d.talk_time, help="seconds until the callee hangs up"
        )
        parser.add_argument(
            "--no-answer", action="store_true", help="calls are never answered (hangup: timeout)"
        )
        parser.add_argument(
            "--webhook-timeout", type=float, default=d.timeout, help="seconds per attempt"
        )
        parser.add_argument(
            "--webhook-retries", type=int, default=d.retries, help="retries on failure"
        )
        parser.add_argument(
            "--signing-key-file",
            type=Path,
            default=None,
            help="ed25519 seed file (made 0600 if missing)",
        )
        parser.add_argument(
            "--log-file", type=Path, default=None, help="append the request log here"
        )
        rec = parser.add_argument_group("call recordings")
        rec.add_argument(
            "--recordings-dir",
            type=Path,
            default=None,
            help="where recording files are written (default: a temporary directory,"
            " removed when the sandbox stops)",
        )
        rec.add_argument(
            "--recording-url-ttl",
            type=float,
            default=600.0,
            help="seconds a signed recording download URL lives (default %(default)s)",
        )
        a = AudioSettings()
        rtc = parser.add_argument_group("WebRTC (/rtc) and the simulated customer")
        rtc.add_argument(
            "--customer-tone-hz",
            type=float,
            default=a.tone_hz,
            help="test tone the customer plays (default %(default)s)",
        )
        rtc.add_argument(
            "--customer-tone-level",
            type=float,
            default=a.tone_level,
            help="its peak level, 0..1 (default %(default)s)",
        )
        rtc.add_argument(
            "--echo-delay",
            type=float,
            default=a.echo_delay,
            help="seconds before the customer echoes the agent back (default %(default)s)",
        )
        rtc.add_argument(
            "--echo-gain",
            type=float,
            default=a.echo_gain,
            help="level of that echo; 0 turns it off (default %(default)s)",
        )
        rtc.add_argument(
            "--no-ringback", action="store_true", help="silence instead of US ringback"
        )
        rtc.add_argument(
            "--rtc-ping-interval",
            type=float,
            default=30.0,
            help="seconds between server pings on /rtc; 0: none (default %(default)s)",
        )
        rtc.add_argument(
            "--rtc-reattach-window",
            type=float,
            default=30.0,
            help="seconds an answered agent leg whose socket closed waits for the SDK to "
            "log in again and reattach it; 0: it ends at once (default %(default)s)",
        )
        rtc.add_argument(
            "--agents",
            type=_agents,
            default=None,
            metavar="browsers|auto[:DELAY]",
            help="who answers agent legs (sip: dials): logged-in WebRTC clients (default),"
            " or, for load runs, the sandbox itself after DELAY seconds (default 0.2) when"
            " the SIP user is a live credential and no client is logged in",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        """Build the configuration and serve until SIGTERM/SIGINT."""
        from devserver.sandbox.server import serve

        if opts["credential_limit"] < 0 or opts["latency_ms"] < 0:
            raise CommandError("--credential-limit and --latency-ms must be >= 0")
        if opts["recording_url_ttl"] <= 0:
            raise CommandError("--recording-url-ttl must be > 0")
        rules: dict[str, FaultRule] = {}
        if opts["latency_ms"]:
            rules["*"] = FaultRule(operation="*", latency_ms=opts["latency_ms"])
        for rule in opts["fault"]:  # a later rule for the same operation adds to it
            prev = rules.get(rule.operation)
            rules[rule.operation] = (
                FaultRule.from_dict({**prev.as_dict(), **rule.as_dict()}) if prev else rule
            )
        try:
            audio = AudioSettings().updated(
                {
                    "tone_hz": opts["customer_tone_hz"],
                    "tone_level": opts["customer_tone_level"],
                    "echo_delay": opts["echo_delay"],
                    "echo_gain": opts["echo_gain"],
                    "ringback": not opts["no_ringback"],
                }
            )
        except ValueError as e:
            raise CommandError(str(e)) from e
        config = SandboxConfig(
            host=opts["host"],
            port=opts["port"],
            api_key=opts["api_key"],
            credential_limit=opts["credential_limit"],
            from_number=opts["from_number"],
            faults=list(rules.values()),
            fault_seed=opts["seed"],
            webhook=WebhookSettings(
                initiated_after=opts["initiated_after"],
                answer_after=opts["answer_after"],
                talk_time=opts["talk_time"],
                answer=not opts["no_answer"],
                webhook_url=opts["webhook_url"],
                timeout=opts["webhook_timeout"],
                retries=opts["webhook_retries"],
            ),
            signing_key_file=opts["signing_key_file"],
            log_file=opts["log_file"],
            audio=audio,
            rtc_ping_interval=opts["rtc_ping_interval"],
            rtc_reattach_window=opts["rtc_reattach_window"],
            auto_answer_agents=opts["agents"],
            connection_id=opts["connection_id"],
            call_connection_id=opts["call_connection_id"],
            recordings_dir=opts["recordings_dir"],
            recording_url_ttl=opts["recording_url_ttl"],
        )
        try:
            asyncio.run(self._main(serve, config))
        except OSError as e:
            raise CommandError(f"cannot start the sandbox: {e}") from e

    async def _main(self, serve: Any, config: SandboxConfig) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(info: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()

        await serve(config, on_ready=ready, stop=stop)
