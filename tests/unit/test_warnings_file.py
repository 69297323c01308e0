"""The early-warning rules file (ledger.audit.warnings.rules): strict, partial, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger.audit.warnings import PARAMS, load_rules
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

DOCS = Path(__file__).resolve().parents[2] / "docs" / "warnings.md"


def refused(tmp_path: Path, text: str) -> str:
    """Load ``text`` as a rules file: it must be refused with ``rules_invalid``; the message."""
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_rules(path)
    assert caught.value.code == ErrorCode.RULES_INVALID
    return caught.value.message


def test_the_packaged_rules_hold_every_rule_enabled_with_its_thresholds() -> None:
    rules = load_rules()
    assert rules.source == "packaged defaults"
    assert list(rules.rules) == list(PARAMS)
    for rule_id, params in PARAMS.items():
        rule = rules[rule_id]
        assert rule.enabled, rule_id
        assert set(rule.params) == set(params), rule_id
    assert rules["repeated-refusals"].count("count") == 3
    assert rules["anchoring-lag"].number("minutes") == 60
    assert "access_ledger_grant_revoked" in rules["fetch-after-revocation"].codes("codes")
    assert (rules.hooks.webhook, rules.hooks.command) == (None, ())


def test_a_file_of_ones_own_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[rules.anchoring-lag]\nminutes = 15\nseverity = "critical"\n'
        "[rules.volume-spike]\nenabled = false\n"
        '[hooks]\nwebhook = "https://alerts.example/drl"\ncommand = ["/bin/true"]\n'
    )
    rules = load_rules(path)
    assert rules.source == str(path)
    lag = rules["anchoring-lag"]
    assert (lag.enabled, lag.severity, lag.number("minutes")) == (True, "critical", 15)
    assert not rules["volume-spike"].enabled
    assert rules["volume-spike"].number("factor") == 5.0  # kept from the defaults
    assert rules["grant-expiring"] == load_rules()["grant-expiring"]
    assert rules.hooks.webhook == "https://alerts.example/drl"
    assert rules.hooks.command == ("/bin/true",)
    assert rules.hooks.timeout_seconds == 10.0


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[rules.no-such-rule]\nenabled = true\n", "unknown rule rules.no-such-rule"),
        ("[rules.anchoring-lag]\nminute = 5\n", "unknown key rules.anchoring-lag.minute"),
        ('[rules.anchoring-lag]\nminutes = "5"\n', "rules.anchoring-lag.minutes must be a number"),
        (
            "[rules.anchoring-lag]\nminutes = -1\n",
            "rules.anchoring-lag.minutes must not be negative",
        ),
        ("[rules.anchoring-lag]\nminutes = nan\n", "rules.anchoring-lag.minutes must be finite"),
        (
            "[rules.anchoring-lag]\nenabled = 1\n",
            "rules.anchoring-lag.enabled must be true or false",
        ),
        (
            '[rules.anchoring-lag]\nseverity = "high"\n',
            "rules.anchoring-lag.severity must be one of",
        ),
        (
            "[rules.repeated-refusals]\ncount = 2.5\n",
            "rules.repeated-refusals.count must be a whole",
        ),
        (
            "[rules.repeated-refusals]\ncount = true\n",
            "rules.repeated-refusals.count must be a whole",
        ),
        (
            "[rules.fetch-after-revocation]\ncodes = [1]\n",
            "fetch-after-revocation.codes must be a list",
        ),
        ("[rules.sensitive-to-enterprise]\nderivatives = 0\n", "derivatives must be true or false"),
        ("[rules]\nanchoring-lag = 5\n", "rules.anchoring-lag must be a table"),
        ("rules = 5\n", "rules must be a table of rules"),
        ("[alerts]\nwebhook = 'x'\n", "unknown section [alerts]"),
        ('[hooks]\nwebhook = "ftp://x/y"\n', "hooks.webhook must be an http(s) URL"),
        ("[hooks]\nwebhook = 5\n", "hooks.webhook must be an http(s) URL"),
        ('[hooks]\ncommand = "notify-send"\n', "hooks.command must be a program and its arguments"),
        ("[hooks]\ncommand = []\n", "hooks.command must be a program and its arguments"),
        ("[hooks]\ntimeout_seconds = 0\n", "hooks.timeout_seconds must be more than 0"),
        ("[hooks]\nretries = 3\n", "unknown key hooks.retries"),
        ("hooks = 3\n", "hooks must be a table"),
        ("[rules.anchoring-lag\n", "is not TOML"),
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    message = refused(tmp_path, text)
    assert message.startswith(str(tmp_path / "rules.toml")), message
    assert named in message, message


def test_a_rules_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(InvalidInput) as caught:
        load_rules(missing)
    assert caught.value.code == ErrorCode.RULES_INVALID
    assert f"cannot read the rules file {missing}" in caught.value.message


def test_docs_describe_every_rule_with_its_default_thresholds() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rules = load_rules()
    for rule_id, params in PARAMS.items():
        section = re.search(rf"^### `{rule_id}`\n(.*?)(?=^### |\Z)", text, re.M | re.S)
        assert section is not None, f"docs/warnings.md has no section for {rule_id}"
        body = " ".join(section.group(1).split())  # line breaks read as spaces
        assert f"Default severity `{rules[rule_id].severity}`" in body, rule_id
        for name in params:
            value = rules[rule_id].params[name]
            assert f"`{name}`" in body, (rule_id, name)
            assert shown(value) in body, (rule_id, name, shown(value))


def shown(value: object) -> str:
    """A default as docs/warnings.md writes it."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return ", ".join(f"`{v}`" for v in value)
    assert isinstance(value, int | float)
    return f"`{value:g}`"
