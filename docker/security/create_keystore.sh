#!/bin/bash
# Create the SROS2 keystore of the reach graphs that move the real arm (docs/safety.md):
# a CA, then one enclave per <enclave> of docker/security/policy.xml, each with its key,
# certificate and the DDS permissions made from the policy, signed by the permissions CA.
#
#   bash docker/security/create_keystore.sh [KEYSTORE_DIR]        # default: ./keystore
#
# Needs ROS 2 with sros2 (source /opt/ros/jazzy/setup.bash, or run it in the reach image:
#   docker compose -f docker/compose.yaml run --rm -v "$PWD/keystore:/ws/keystore" sim \
#       bash docker/security/create_keystore.sh /ws/keystore
# ). The permissions allow the ROS_DOMAIN_ID of the environment (default 0): run it with the
# domain the robot uses. docker/compose.yaml mounts ./keystore into the real and collect
# services (ROS_SECURITY_KEYSTORE=/ws/keystore, ROS_SECURITY_ENABLE=true, Enforce).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
keystore="${1:-keystore}"
policy="${REACH_SECURITY_POLICY:-$here/policy.xml}"

if ! command -v ros2 >/dev/null 2>&1; then
    echo "error: ros2 not found: source /opt/ros/jazzy/setup.bash (sros2 is part of ros-core)," \
         "or run this script in the reach image" >&2
    exit 2
fi
if [ ! -f "$policy" ]; then
    echo "error: no policy $policy" >&2
    exit 2
fi

# creates the keystore (CA, governance) when it does not exist yet, then an enclave for each
# <enclave> of the policy with its permissions
ros2 security generate_artifacts -k "$keystore" -p "$policy"

# every enclave of the policy must now have signed permissions that verify against the CA
status=0
while read -r enclave; do
    dir="$keystore/enclaves${enclave}"
    if [ ! -f "$dir/permissions.p7s" ]; then
        echo "error: no permissions for enclave $enclave in $dir" >&2
        status=1
        continue
    fi
    if ! openssl smime -verify -in "$dir/permissions.p7s" \
            -CAfile "$keystore/public/permissions_ca.cert.pem" -out /dev/null 2>/dev/null; then
        echo "error: the permissions of enclave $enclave do not verify" >&2
        status=1
    fi
done < <(sed -n 's/.*<enclave path="\([^"]*\)".*/\1/p' "$policy")
[ "$status" -eq 0 ] && echo "keystore $keystore: every enclave of $policy has verified permissions"
exit "$status"
