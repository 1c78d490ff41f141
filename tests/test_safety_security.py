"""Access control of the graphs that move the real arm: SROS2 enclaves and DDS permissions.

The Fast DDS wheels installed here are built without the DDS security plugins, and sros2 is not
installable from PyPI, so nothing here runs a secured graph: these tests check statically that

* docker/security/policy.xml validates (docker/security/policy.xsd, with lxml) and that the
  DDS permissions each enclave gets (reach_bringup.security, named as SROS2 names DDS topics)
  validate (docker/security/permissions.xsd);
* only the controller and collect_images may publish joint deltas, only the bridge joint
  commands, and no enclave may call another node's parameter services;
* each node of real.launch.py and collect.launch.py runs in its own enclave (--enclave), which
  allows exactly the topics the node publishes;
* the real and collect compose services run with ROS_SECURITY_* (Enforce) and the keystore;
* docker/security/create_keystore.sh makes and checks an enclave per policy enclave (run against
  stand-ins of ros2 and openssl).
"""
from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip('rclpy')
etree = pytest.importorskip('lxml.etree')

from reach_bringup import launch_spec, security  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEC = ROOT / 'docker' / 'security'
POLICY = security.read_policy(str(SEC / 'policy.xml'))
SECURED = ['real.launch.py', 'collect.launch.py']
#: what every rclpy node publishes besides its own topics
INFRASTRUCTURE = {'/rosout', '/parameter_events', '/ros_discovery_info'}


def schema(name):
    return etree.XMLSchema(etree.parse(str(SEC / name)))


def test_the_policy_validates_against_its_schema():
    s = schema('policy.xsd')
    assert s.validate(etree.parse(str(SEC / 'policy.xml'))), s.error_log


def test_a_policy_with_a_wildcard_or_a_bad_rule_does_not_validate():
    s = schema('policy.xsd')
    text = (SEC / 'policy.xml').read_text()
    for bad in (text.replace('<topic>/reach/joint_delta</topic>', '<topic>/*</topic>', 1),
                text.replace('publish="ALLOW"', 'publish="MAYBE"', 1)):
        assert not s.validate(etree.fromstring(bad.encode()))


@pytest.mark.parametrize('enclave', sorted(POLICY))
def test_the_permissions_of_every_enclave_validate(enclave):
    s = schema('permissions.xsd')
    doc = etree.fromstring(security.permissions_xml(POLICY[enclave]))
    assert s.validate(doc), s.error_log
    assert doc.findtext('permissions/grant/subject_name') == f'CN={enclave}'
    assert doc.findtext('permissions/grant/default') == 'DENY'


def test_only_the_controller_and_the_collector_publish_deltas_and_only_the_bridge_commands():
    assert security.publishers(POLICY, '/reach/joint_delta') == {
        '/reach/controller', '/reach/collect_images'}
    assert security.publishers(POLICY, '/robot/limb/left/joint_command') == {
        '/reach/baxter_bridge'}
    assert security.publishers(POLICY, '/robot/joint_states') == {'/reach/robot'}
    assert security.publishers(POLICY, '/reach/target') == {'/reach/operator'}
    assert security.requesters(POLICY, '/controller/start_trial') == {'/reach/operator'}
    pub, _ = security.dds_topics(POLICY['/reach/controller'])
    assert 'rt/reach/joint_delta' in pub and 'rt/robot/limb/left/joint_command' not in pub


def test_no_enclave_may_call_a_parameter_service():
    for e in POLICY.values():
        assert not any('parameter' in s for s in e.request), e.path
    assert '/baxter_bridge/set_parameters' in POLICY['/reach/baxter_bridge'].reply


def _resolved_topics(node):
    mod = importlib.import_module(f'reach_ros.{node.executable}')
    remap = dict(node.remappings)
    out = {'pub': set(), 'sub': set()}
    for name, (direction, _) in mod.TOPICS.items():
        out[direction].add(security.resolve(remap.get(name, name), node.namespace or '/',
                                            node.name))
    services = {security.resolve(s, node.namespace or '/', node.name)
                for s in getattr(mod, 'SERVICES', {})}
    return out, services


@pytest.mark.parametrize('launch', SECURED)
def test_every_node_runs_in_an_enclave_that_allows_exactly_what_it_publishes(launch):
    spec = launch_spec.read(str(ROOT / 'launch' / launch))
    for node in spec.nodes:
        assert node.enclave in POLICY, f'{node.name}: enclave {node.enclave!r} not in the policy'
        e = POLICY[node.enclave]
        topics, services = _resolved_topics(node)
        assert e.publish - INFRASTRUCTURE == topics['pub'], node.name
        assert topics['sub'] <= e.subscribe, node.name
        assert services <= e.reply, node.name
        cmd = launch_spec.node_command(spec, node, config_dir='/cfg')
        assert cmd[cmd.index('--enclave') + 1] == node.enclave
    assert len({n.enclave for n in spec.nodes}) == len(spec.nodes), 'one enclave per node'


def test_the_robot_services_run_with_dds_security_enforced():
    services = yaml.safe_load((ROOT / 'docker' / 'compose.yaml').read_text())['services']
    for name in ('real', 'collect'):
        env = services[name]['environment']
        assert env['ROS_SECURITY_ENABLE'] == 'true' and env['ROS_SECURITY_STRATEGY'] == 'Enforce'
        mounts = [v.split(':') for v in services[name]['volumes']]
        assert [env['ROS_SECURITY_KEYSTORE'], 'ro'] in [m[1:] for m in mounts], mounts
    assert 'ROS_SECURITY_ENABLE' not in services['sim']['environment']
    assert 'COPY docker/security ./docker/security' in (ROOT / 'docker' / 'Dockerfile').read_text()


_FAKE_ROS2 = r"""#!/bin/bash
# stands in for sros2's generate_artifacts: an enclave folder per policy enclave
echo "$@" >> "$CALLS"
ks="$4"; policy="$6"
mkdir -p "$ks/public" && touch "$ks/public/permissions_ca.cert.pem"
for e in $(sed -n 's/.*<enclave path="\([^"]*\)".*/\1/p' "$policy"); do
    [ "$e" = "$SKIP" ] && continue
    mkdir -p "$ks/enclaves$e" && touch "$ks/enclaves$e/permissions.p7s"
done
"""


@pytest.mark.parametrize('skip', ['', '/reach/baxter_bridge'])
def test_the_keystore_script_makes_and_checks_an_enclave_per_policy_enclave(tmp_path, skip):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ros2').write_text(_FAKE_ROS2)
    (bin_dir / 'openssl').write_text('#!/bin/bash\necho "$@" >> "$CALLS"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', CALLS=str(tmp_path / 'calls'),
               SKIP=skip)
    r = subprocess.run(['bash', str(SEC / 'create_keystore.sh'), str(tmp_path / 'ks')], env=env,
                       capture_output=True, text=True, timeout=60)
    calls = (tmp_path / 'calls').read_text().splitlines()
    assert calls[0] == f'security generate_artifacts -k {tmp_path / "ks"} -p {SEC / "policy.xml"}'
    if skip:
        assert r.returncode == 1 and f'no permissions for enclave {skip}' in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert sum('smime -verify' in c for c in calls) == len(POLICY)
