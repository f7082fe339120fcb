"""The audit log: hash chain, head anchor, tamper detection, concurrent appends, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolsmith.audit import AUDIT_FILE, GENESIS, AuditEntry, AuditLog, entry_hash
from toolsmith.cli.audit import app
from toolsmith.errors import AuditError


def filled(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / AUDIT_FILE)
    events = ["build", "publish", "approve", "load", "yank", "unyank", "reject"]
    for i in range(n):
        log.append(
            events[i % len(events)],
            actor=f"user{i}",
            subject=f"slugify@1.0.{i}",
            reason=f"reason {i}",
            data={"i": i},
        )
    return log


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def rewrite(log: AuditLog, new_lines: list[str]) -> None:
    log.path.write_text("".join(new_lines))


def test_entries_chain_from_genesis_and_hash_their_content(tmp_path: Path) -> None:
    """Each entry holds seq, prev hash and a sha256 over its canonical JSON without the hash."""
    log = filled(tmp_path, 3)
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    for e in entries:
        assert e.hash == entry_hash(e.model_dump(mode="json", exclude={"hash"}))
    assert entries[2].event == "approve" and entries[2].reason == "reason 2"
    assert json.loads(log.head_path.read_text()) == {"seq": 3, "hash": entries[2].hash}
    assert log.verify().ok


def test_empty_log_verifies(tmp_path: Path) -> None:
    """A registry that never logged anything has an intact, empty audit log."""
    result = AuditLog(tmp_path / AUDIT_FILE).verify()
    assert result.ok and result.entries == 0


def test_edited_entry_is_detected_at_its_seq(tmp_path: Path) -> None:
    """Changing the reason of entry 2 without recomputing its hash fails at seq 2."""
    log = filled(tmp_path)
    rows = lines(log)
    rows[1] = rows[1].replace("reason 1", "nothing to see")
    rewrite(log, rows)
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == 2
    assert result.problem == "seq 2 was edited (its content does not match its hash)"


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    """Re-hashing an edited entry moves the break to the next entry, whose prev no longer fits."""
    log = filled(tmp_path)
    rows = lines(log)
    fields = json.loads(rows[1])
    fields["actor"] = "mallory"
    fields["hash"] = entry_hash({k: v for k, v in fields.items() if k != "hash"})
    rows[1] = json.dumps(fields) + "\n"
    rewrite(log, rows)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "does not chain to seq 2" in (result.problem or "")


def test_deleted_middle_entry_is_a_seq_gap(tmp_path: Path) -> None:
    """Deleting entry 2 of 4 is reported at seq 2 as a deletion."""
    log = filled(tmp_path)
    rows = lines(log)
    rewrite(log, rows[:1] + rows[2:])
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 2, 1)
    assert result.problem == "expected seq 2, found seq 3: 1 entry(ies) deleted"


def test_deleted_last_entry_is_caught_by_the_head_anchor(tmp_path: Path) -> None:
    """Cutting the last entry leaves a valid chain; the head file still names seq 4."""
    log = filled(tmp_path)
    rewrite(log, lines(log)[:-1])
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.head_seq) == (False, 4, 4)
    assert result.problem == "the head anchors seq 4 but the log ends at seq 3: seq 4 deleted"


def test_append_refuses_to_paper_over_a_deleted_last_entry(tmp_path: Path) -> None:
    """After the last entry is cut, appending is refused, so seq 4 cannot be silently reused."""
    log = filled(tmp_path)
    rewrite(log, lines(log)[:-1])
    with pytest.raises(AuditError, match=r"head anchors seq 4 but the log ends at seq 3") as info:
        log.append("load", actor="agent", subject="slugify@1.0.3")
    assert info.value.hint and "audit verify" in info.value.hint
    assert len(lines(log)) == 3


def test_reordered_entries_are_detected(tmp_path: Path) -> None:
    """Swapping entries 2 and 3 fails at seq 2."""
    log = filled(tmp_path)
    rows = lines(log)
    rows[1], rows[2] = rows[2], rows[1]
    rewrite(log, rows)
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "found seq 3" in (result.problem or "")


def test_missing_head_file_is_detected(tmp_path: Path) -> None:
    """A log whose head file was removed fails verification and refuses appends."""
    log = filled(tmp_path, 2)
    log.head_path.unlink()
    assert log.verify().problem == "the head file is missing for a log of 2 entries"
    with pytest.raises(AuditError, match="head file is missing"):
        log.append("build", actor="ci", subject="x@1.0.0")


def test_incomplete_last_line_is_detected(tmp_path: Path) -> None:
    """A write that stopped mid-line is reported at that line and blocks further appends."""
    log = filled(tmp_path, 2)
    with log.path.open("a") as f:
        f.write('{"seq": 3, "timest')
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "incomplete" in (result.problem or "")
    with pytest.raises(AuditError, match="ends in an incomplete entry"):
        log.append("build", actor="ci", subject="x@1.0.0")


def test_head_one_behind_after_a_crash_is_accepted_and_repaired(tmp_path: Path) -> None:
    """A crash between writing the line and the head leaves the head one behind: still valid."""
    log = filled(tmp_path, 2)
    old_head = log.head_path.read_bytes()
    log.append("publish", actor="ci", subject="x@1.0.0")
    log.head_path.write_bytes(old_head)
    assert log.verify().ok
    entry = log.append("load", actor="agent", subject="x@1.0.0")
    assert entry.seq == 4
    assert json.loads(log.head_path.read_text())["seq"] == 4
    assert log.verify().ok


def test_unknown_event_and_non_json_data_are_refused(tmp_path: Path) -> None:
    """Typos in event names and data that is not JSON are AuditErrors, and nothing is written."""
    log = AuditLog(tmp_path / AUDIT_FILE)
    with pytest.raises(AuditError, match=r"unknown audit event 'publsh'"):
        log.append("publsh", actor="ci", subject="x@1.0.0")
    with pytest.raises(AuditError, match="is not JSON"):
        log.append("build", actor="ci", subject="x@1.0.0", data={"at": object()})
    assert not log.path.exists()


APPENDER = """
import sys
from toolsmith.audit import AuditLog

log = AuditLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    log.append("load", actor=sys.argv[2], subject=f"tool@1.0.{i}", data={"i": i})
"""


def test_concurrent_appends_from_two_processes_keep_the_chain(tmp_path: Path) -> None:
    """Two processes appending at once yield one intact chain with every entry exactly once."""
    path = tmp_path / AUDIT_FILE
    n = 60
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), actor, str(n)])
        for actor in ("alice", "bob")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    log = AuditLog(path)
    result = log.verify()
    assert result.ok, result.problem
    assert result.entries == 2 * n
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, 2 * n + 1))
    for actor in ("alice", "bob"):
        assert sorted(e.data["i"] for e in entries if e.actor == actor) == list(range(n))


def test_cli_show_lists_the_last_entries_as_json(tmp_path: Path) -> None:
    """`audit show --json --limit 2` prints the last two entries."""
    filled(tmp_path, 4)
    result = CliRunner().invoke(
        app, ["show", "--registry", str(tmp_path), "--json", "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    shown = [AuditEntry.model_validate(e) for e in json.loads(result.output)]
    assert [e.seq for e in shown] == [3, 4]


def test_cli_verify_names_the_first_bad_seq(tmp_path: Path) -> None:
    """`audit verify` passes on an intact log and fails naming the seq of an edited entry."""
    log = filled(tmp_path, 3)
    ok = CliRunner().invoke(app, ["verify", "--registry", str(tmp_path)])
    assert ok.exit_code == 0 and "3 entries, chain intact" in ok.output
    rows = lines(log)
    rows[0] = rows[0].replace('"user0"', '"mallory"')
    rewrite(log, rows)
    bad = CliRunner().invoke(app, ["verify", "--registry", str(tmp_path)])
    assert isinstance(bad.exception, AuditError)
    assert "fails verification at seq 1 (line 1): seq 1 was edited" in str(bad.exception)


def _plant(path: Path, kind: str) -> None:
    import os

    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (path.parent / "elsewhere").write_text("{}")
        path.symlink_to(path.parent / "elsewhere")
    elif kind == "hardlink":
        (path.parent / "elsewhere").write_text("{}")
        os.link(path.parent / "elsewhere", path)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "hardlink", "directory"])
@pytest.mark.parametrize("which", [AUDIT_FILE, AUDIT_FILE + ".head"])
def test_a_special_file_planted_as_the_log_or_head_is_refused_not_waited_on(
    tmp_path: Path, kind: str, which: str
) -> None:
    """Whoever can write the registry directory plants a FIFO (or a link, or a directory) as the
    log or its head: verify, show and append refuse it at once instead of blocking forever."""
    from toolsmith.errors import UnsafePathError

    log = AuditLog(tmp_path / AUDIT_FILE)
    log.append("publish", actor="alice", subject="t@1.0.0")
    _plant(tmp_path / which, kind)
    expected = (AuditError, UnsafePathError) if kind == "directory" else UnsafePathError
    with pytest.raises(expected):
        log.verify()
    with pytest.raises(expected):
        log.append("yank", actor="alice", subject="t@1.0.0")
    if which == AUDIT_FILE:
        with pytest.raises(expected):
            list(log.entries())


def test_cli_refuses_a_fifo_audit_log_with_the_registry_exit_code(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / AUDIT_FILE)
    for command in ("show", "verify"):
        r = subprocess.run(
            [sys.executable, "-c", "from toolsmith.cli import main; main()", "audit", command,
             "--registry", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 3, r.stderr
        assert f"UnsafePathError: refusing {tmp_path / AUDIT_FILE}: not a regular file" in r.stderr


# -- a consumer's log seals damage and goes on ------------------------------------------------


def sealing(tmp_path: Path, n: int = 3) -> AuditLog:
    filled(tmp_path, n)
    return AuditLog(tmp_path / AUDIT_FILE, on_damage="seal")


def test_a_sealing_log_marks_an_edited_tail_with_a_break_and_goes_on(tmp_path: Path) -> None:
    """An edited last entry: the next append writes a break entry sealing the damaged bytes,
    then chains after it; verify names the damaged line and the break, and still fails."""
    log = sealing(tmp_path)
    rows = lines(log)
    rows[-1] = rows[-1].replace("reason 2", "nothing to see")
    rewrite(log, rows)
    sealed = log.path.read_bytes()
    entry = log.append("load", actor="agent", subject="slugify@1.0.2")
    brk, after = list(log.entries())[-2:]
    assert (brk.seq, brk.event, brk.actor, after) == (4, "break", "agent", entry)
    assert brk.prev == hashlib.sha256(sealed).hexdigest() and entry.prev == brk.hash
    assert brk.reason and "does not match its hash" in brk.reason
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.breaks, result.tail_intact) == (
        False,
        3,
        [4],
        True,
    )
    assert log.append("load", actor="agent", subject="x@1.0.0").seq == 6


def test_a_sealing_log_keeps_a_cut_write_as_its_own_line(tmp_path: Path) -> None:
    """A write cut short mid-line is ended with a newline, sealed, and recording goes on."""
    log = sealing(tmp_path, 2)
    with log.path.open("a") as f:
        f.write('{"seq": 3, "timest')
    log.append("load", actor="agent", subject="x@1.0.0")
    rows = lines(log)
    assert rows[2] == '{"seq": 3, "timest\n' and len(rows) == 5
    result = log.verify()
    assert (result.first_bad_seq, result.breaks, result.tail_intact) == (3, [4], True)


def test_a_sealing_log_marks_deleted_last_entries(tmp_path: Path) -> None:
    """Cutting the last entries (the head still anchors them) is sealed as a break naming it."""
    log = sealing(tmp_path, 4)
    rewrite(log, lines(log)[:-2])
    log.append("load", actor="agent", subject="x@1.0.0")
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.breaks, result.tail_intact) == (
        False,
        3,
        [3],
        True,
    )
    assert "head anchors seq 4 but the log ends at seq 2" in (result.problem or "")


def test_changing_sealed_bytes_afterwards_voids_the_break(tmp_path: Path) -> None:
    """The break commits to the bytes before it: editing them again (hiding the evidence)
    makes the break itself fail, so the chain after it is no longer vouched for."""
    log = sealing(tmp_path)
    rows = lines(log)
    rows[-1] = rows[-1].replace("reason 2", "nothing to see")
    rewrite(log, rows)
    log.append("load", actor="agent", subject="x@1.0.0")
    rows = lines(log)
    rows[2] = rows[2].replace("nothing to see", "reason 2")
    rewrite(log, rows)
    result = log.verify()
    assert (result.ok, result.first_bad_seq, result.breaks, result.tail_intact) == (
        False,
        4,
        [],
        False,
    )


def test_entries_leave_out_sealed_lines_and_refuse_unsealed_ones(tmp_path: Path) -> None:
    """`entries` skips an unreadable line a break has sealed, and raises on one it has not."""
    log = sealing(tmp_path, 2)
    with log.path.open("a") as f:
        f.write("not json\n")
    with pytest.raises(AuditError, match="line 3 of"):
        list(log.entries())
    log.append("load", actor="agent", subject="x@1.0.0")
    assert [e.event for e in log.entries()] == ["build", "publish", "break", "load"]


def test_a_refusing_log_still_refuses_after_damage(tmp_path: Path) -> None:
    """The registry's log (on_damage="refuse", the default) writes no break: edits stop."""
    log = filled(tmp_path, 2)
    with log.path.open("a") as f:
        f.write("not json\n")
    with pytest.raises(AuditError, match="damaged or edited"):
        log.append("build", actor="ci", subject="x@1.0.0")
    assert len(lines(log)) == 3


def test_cli_verify_names_the_damaged_line_the_break_and_the_fix(tmp_path: Path) -> None:
    """`audit verify` on a sealed log fails naming the damaged line, the break and that the
    chain after it is intact, and says to keep the log and move it aside for a clean chain."""
    log = sealing(tmp_path)
    with log.path.open("a") as f:
        f.write("garbage\n")
    log.append("load", actor="agent", subject="x@1.0.0")
    bad = CliRunner().invoke(app, ["verify", "--registry", str(tmp_path)])
    assert isinstance(bad.exception, AuditError)
    message, hint = bad.exception.message, bad.exception.hint or ""
    assert "at seq 4 (line 4): line 4 is not an audit entry" in message
    assert "break entries sealing damage at seq 5" in message
    assert "after seq 5 is intact, so recording went on" in message
    assert "kept in the log as evidence" in hint and "audit.jsonl.head aside" in hint
