"""The access-control policy of the reach graphs (docker/security/policy.xml), read without sros2.

SROS2 turns a policy (enclaves -> profiles -> topics and services allowed to publish, subscribe,
request, reply) into one signed DDS permissions document per enclave
(``ros2 security create_permission``, run by docker/security/create_keystore.sh). The Fast DDS
wheels installed here carry no security plugins and sros2 is not installable from PyPI, so the
tests check the policy and the permissions it yields statically, with this module:

* :func:`read_policy` resolves every topic and service name of each enclave's profiles (``~``
  and relative names, as rcl resolves them);
* :func:`permissions_xml` writes the DDS permissions document of an enclave the way SROS2 names
  DDS topics (``rt`` topics, ``rq``/``rr`` service request and reply topics);
* :func:`publishers` / :func:`requesters` say which enclaves may publish a topic or call a
  service.

    python -m reach_bringup.security docker/security/policy.xml OUT_DIR   # unsigned permissions
"""
from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

DDS_SECURITY_NOTE = 'unsigned: create_keystore.sh signs the ones it installs'


@dataclass
class Enclave:
    """What one enclave may do; names fully resolved."""

    path: str
    publish: set[str] = field(default_factory=set)
    subscribe: set[str] = field(default_factory=set)
    reply: set[str] = field(default_factory=set)
    request: set[str] = field(default_factory=set)


def resolve(name: str, ns: str, node: str) -> str:
    """A topic or service name of a profile, fully qualified as rcl resolves it."""
    ns = '/' + ns.strip('/') if ns.strip('/') else ''
    if name.startswith('/'):
        return name
    if name.startswith('~'):
        return f'{ns}/{node}{name[1:]}'
    return f'{ns}/{name}'


def read_policy(path: str) -> dict[str, Enclave]:
    """Enclave path -> :class:`Enclave` of an SROS2 policy file (ALLOW rules only; the reach
    policy has no DENY rule: everything not allowed is denied)."""
    root = ET.parse(path).getroot()
    if root.tag != 'policy' or root.find('enclaves') is None:
        raise ValueError(f'{path}: not an SROS2 policy (<policy><enclaves>...)')
    out = {}
    for enc in root.iter('enclave'):
        e = out.setdefault(enc.get('path'), Enclave(enc.get('path')))
        for prof in enc.iter('profile'):
            ns, node = prof.get('ns'), prof.get('node')
            for group, item, rules in (('topics', 'topic', ('publish', 'subscribe')),
                                       ('services', 'service', ('reply', 'request'))):
                for g in prof.findall(group):
                    for rule in rules:
                        value = g.get(rule)
                        if value is None:
                            continue
                        if value != 'ALLOW':
                            raise ValueError(f'{path}: {enc.get("path")}: only ALLOW rules')
                        getattr(e, rule).update(resolve(t.text.strip(), ns, node)
                                                for t in g.findall(item))
    return out


def publishers(policy: dict[str, Enclave], topic: str) -> set[str]:
    return {p for p, e in policy.items() if topic in e.publish}


def requesters(policy: dict[str, Enclave], service: str) -> set[str]:
    return {p for p, e in policy.items() if service in e.request}


def dds_topics(e: Enclave) -> tuple[list[str], list[str]]:
    """(DDS topics the enclave may publish, ... subscribe), named as SROS2 names them."""
    pub = {'rt' + t for t in e.publish} | {f'rr{s}Reply' for s in e.reply} | \
        {f'rq{s}Request' for s in e.request}
    sub = {'rt' + t for t in e.subscribe} | {f'rq{s}Request' for s in e.reply} | \
        {f'rr{s}Reply' for s in e.request}
    return sorted(pub), sorted(sub)


def permissions_xml(e: Enclave, domain_id: int = 0, not_before: str = '2026-01-01T00:00:00',
                    not_after: str = '2036-01-01T00:00:00') -> bytes:
    """The DDS Security permissions document of enclave ``e`` (default DENY)."""
    dds = ET.Element('dds')
    grant = ET.SubElement(ET.SubElement(dds, 'permissions'), 'grant', name=e.path)
    ET.SubElement(grant, 'subject_name').text = f'CN={e.path}'
    validity = ET.SubElement(grant, 'validity')
    ET.SubElement(validity, 'not_before').text = not_before
    ET.SubElement(validity, 'not_after').text = not_after
    rule = ET.SubElement(grant, 'allow_rule')
    ET.SubElement(ET.SubElement(rule, 'domains'), 'id').text = str(domain_id)
    pub, sub = dds_topics(e)
    for tag, names in (('publish', pub), ('subscribe', sub)):
        topics = ET.SubElement(ET.SubElement(rule, tag), 'topics')
        for n in names:
            ET.SubElement(topics, 'topic').text = n
    ET.SubElement(grant, 'default').text = 'DENY'
    ET.indent(dds)
    return ET.tostring(dds, encoding='utf-8', xml_declaration=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    policy = read_policy(argv[0])
    for path, e in policy.items():
        out = os.path.join(argv[1], path.strip('/'), 'permissions.xml')
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, 'wb') as f:
            f.write(permissions_xml(e))
        print(f'{out} ({DDS_SECURITY_NOTE})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
