"""Which webhook destinations are acceptable, in every spelling of a forbidden address."""

from __future__ import annotations

import pytest

from service.core.outbound import DestinationRefused, OutboundPolicy, parse_target, resolve

STRICT = OutboundPolicy()
DEVELOPMENT = OutboundPolicy(allow_http=True)

FORBIDDEN_HOSTS = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "app.localhost",
    "metadata.google.internal",
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "017700000001",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[2002:a9fe:a9fe::]",  # 6to4 of 169.254.169.254
    "169.254.169.254",
    "10.0.0.7",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "[::]",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[fe80::1]",
    "[fd00::1]",
]


@pytest.mark.parametrize("host", FORBIDDEN_HOSTS)
def test_forbidden_addresses_are_refused_in_every_spelling(host):
    with pytest.raises(DestinationRefused) as refused:
        resolve(parse_target(f"https://{host}:8443/hook", STRICT), STRICT, timeout_s=2)
    assert refused.value.code == "refused_address"


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "https://[::1/hook",
        f"https://{'a' * 64}.example.org/hook",
        f"https://{'a' * 60}.{'b' * 60}.{'c' * 60}.{'d' * 60}.{'e' * 20}.org/",
        "https://exa mple.org/",
        "https://example.org\\@evil.example/",
        "https://user:secret@example.org/",
        "https:///hook",
        "https://example.org:0/",
        "https://example.org:99999/",
        "https://0x08080808/",  # a public address, but not written as one
        "ftp://example.org/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://exa_mple.org/",
        "https://-example.org/",
        "",
        42,
        None,
    ],
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(DestinationRefused) as refused:
        parse_target(url, DEVELOPMENT)
    assert refused.value.code == "malformed_url"


def test_plain_http_only_in_development():
    with pytest.raises(DestinationRefused) as refused:
        parse_target("http://ehr.example.org/hook", STRICT)
    assert refused.value.code == "insecure_url"
    assert parse_target("http://ehr.example.org/hook", DEVELOPMENT).port == 80


def test_a_public_destination_is_parsed_for_the_sender():
    target = parse_target("https://EHR.Example.org:8443/hooks/cd20?clinic=7#frag", STRICT)
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "ehr.example.org",
        8443,
        "/hooks/cd20?clinic=7",
    )
    assert target.host_header == "ehr.example.org:8443"
    assert parse_target("https://bücher.example/", STRICT).host == "xn--bcher-kva.example"
    assert resolve(parse_target("https://8.8.8.8/", STRICT), STRICT, timeout_s=1) == [
        parse_target("https://8.8.8.8/", STRICT).literal
    ]


def test_the_allow_list_admits_named_networks_and_hosts_only():
    entries = ["127.0.0.1", "10.1.0.0/16", "hooks.lan"]
    policy = OutboundPolicy.from_entries(entries, allow_http=False)
    assert resolve(parse_target("https://127.0.0.1:9/", policy), policy, timeout_s=1)
    assert resolve(parse_target("https://10.1.2.3/", policy), policy, timeout_s=1)
    for still_refused in ("https://10.2.0.1/", "https://127.0.0.2/", "https://0.0.0.0/"):
        with pytest.raises(DestinationRefused):
            resolve(parse_target(still_refused, policy), policy, timeout_s=1)
    with pytest.raises(ValueError, match="not an IP address"):
        OutboundPolicy.from_entries(["not a host!"], allow_http=False)
