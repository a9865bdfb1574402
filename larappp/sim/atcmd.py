"""The module side of V.250: command-line assembly, command splitting, parameter parsing.

Written for the simulator only (the module's view of the line), independent of the
host's AT core. Pure functions and one small line assembler; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["action", "set", "read", "test"]

#: V.250 §5.2.1: a command line may be this long (u-blox: at least 1024 characters).
MAX_LINE = 1024


class CommandSyntaxError(ValueError):
    """The command line cannot be split into commands."""


@dataclass(frozen=True)
class Command:
    """One command of a command line: "+CGDCONT=1,...", "E0", "S2?", "D*99***1#"."""

    name: str
    kind: Kind
    #: Text after "=" for set commands, the digits of basic commands, the dial string for D.
    args: str
    #: The command as received (without "AT"), for fault matching and logs.
    text: str


@dataclass(frozen=True)
class Param:
    """One parameter of an extended command: its text and whether it was quoted."""

    text: str
    quoted: bool

    @property
    def empty(self) -> bool:
        return not self.quoted and self.text == ""


class LineAssembler:
    """Collects command-mode bytes into lines that start with "AT" (V.250 §5.2)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overflowed = False

    def clear(self) -> None:
        self._buf.clear()
        self.overflowed = False

    def feed_byte(self, byte: int, *, cr: int = 13, bs: int = 8) -> str | None:
        """Take one byte; return the line body after "AT" when a line ends, else None.

        Bytes before the "AT" prefix are ignored, LF is ignored, backspace edits.
        A line that does not start with "AT" gives None; an overflowed line gives "\0".
        """
        if byte == cr:
            line = bytes(self._buf)
            overflowed = self.overflowed
            self.clear()
            if overflowed:
                return "\0"
            if len(line) >= 2 and line[:2].upper() == b"AT":
                return line[2:].decode("latin-1")
            return None
        if byte == bs:
            if self._buf:
                self._buf.pop()
            return None
        if byte == 10 or byte == 0:
            return None
        if not self._buf:
            if byte not in (ord("A"), ord("a")):
                return None
        elif len(self._buf) == 1 and byte not in (ord("T"), ord("t")):
            # Not a prefix after all: "A" followed by something else restarts the search.
            self._buf.clear()
            if byte in (ord("A"), ord("a")):
                self._buf.append(byte)
            return None
        if len(self._buf) >= MAX_LINE:
            self.overflowed = True
            return None
        self._buf.append(byte)
        return None


def _strip_spaces(body: str) -> str:
    """V.250: spaces outside strings are ignored."""
    out: list[str] = []
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            continue
        out.append(ch)
    return "".join(out)


_BASIC = set("EVQHOIZXLMAPT")


def split_commands(body: str) -> list[Command]:
    """Split a line body (after "AT") into commands; raises CommandSyntaxError."""
    body = _strip_spaces(body)
    commands: list[Command] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        up = ch.upper()
        start = i
        if ch == ";":
            i += 1
            continue
        if ch in "+#":
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] in "_-."):
                j += 1
            name = body[i:j].upper()
            if len(name) < 2:
                raise CommandSyntaxError(f"bad extended command at {body[i:]!r}")
            if body.startswith("=?", j):
                kind: Kind = "test"
                args = ""
                j += 2
            elif body.startswith("?", j):
                kind = "read"
                args = ""
                j += 1
            elif body.startswith("=", j):
                kind = "set"
                k = j + 1
                quoted = False
                while k < n and (quoted or body[k] != ";"):
                    if body[k] == '"':
                        quoted = not quoted
                    k += 1
                if quoted:
                    raise CommandSyntaxError("unterminated string")
                args = body[j + 1 : k]
                j = k
            else:
                kind = "action"
                args = ""
            if j < n and body[j] not in ";":
                raise CommandSyntaxError(f"junk after {name}: {body[j:]!r}")
            commands.append(Command(name, kind, args, body[start:j]))
            i = j
            continue
        if up == "D":
            args = body[i + 1 :]
            commands.append(Command("D", "action", args, body[i:]))
            break
        if up == "S":
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            if j == i + 1:
                raise CommandSyntaxError("S without register number")
            name = "S" + str(int(body[i + 1 : j]))
            if body.startswith("?", j):
                commands.append(Command(name, "read", "", body[start : j + 1]))
                i = j + 1
                continue
            if body.startswith("=", j):
                k = j + 1
                while k < n and body[k].isdigit():
                    k += 1
                commands.append(Command(name, "set", body[j + 1 : k], body[start:k]))
                i = k
                continue
            raise CommandSyntaxError(f"{name} needs = or ?")
        if ch == "&":
            if i + 1 >= n or not body[i + 1].isalpha():
                raise CommandSyntaxError("& without a letter")
            j = i + 2
            while j < n and body[j].isdigit():
                j += 1
            commands.append(Command("&" + body[i + 1].upper(), "action", body[i + 2 : j], body[start:j]))
            i = j
            continue
        if up in _BASIC:
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            commands.append(Command(up, "action", body[i + 1 : j], body[start:j]))
            i = j
            continue
        raise CommandSyntaxError(f"unknown command at {body[i:]!r}")
    return commands


def split_params(args: str) -> list[Param]:
    """Split "1,\"IP\",\"apn\"" into parameters; quotes keep commas. Raises CommandSyntaxError."""
    if args == "":
        return []
    params: list[Param] = []
    current: list[str] = []
    quoted = False
    was_quoted = False
    for ch in args:
        if ch == '"':
            if not quoted and current:
                raise CommandSyntaxError("quote inside a parameter")
            quoted = not quoted
            was_quoted = True
            continue
        if ch == "," and not quoted:
            params.append(Param("".join(current), was_quoted))
            current = []
            was_quoted = False
            continue
        if was_quoted and not quoted:
            raise CommandSyntaxError("text after a closing quote")
        current.append(ch)
    if quoted:
        raise CommandSyntaxError("unterminated string")
    params.append(Param("".join(current), was_quoted))
    return params
