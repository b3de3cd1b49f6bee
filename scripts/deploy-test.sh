#!/usr/bin/env bash
# The deployment test (this backs `make deploy-test`, run by CI after `make
# test`): the compute-to-data scenario for real, with Vagrant's docker
# provider (each machine a container with sshd; registry and site machines
# run their own container engine) and the Ansible playbooks in scenarios/.
#
#   1. install Vagrant (Debian package) and Ansible (into the venv) if missing
#   2. build the service images and the scenario assets (build/)
#   3. vagrant up: five machines, base + mahiru_up
#   4. configure_sites on client1 and client2 (if the client scripts exist;
#      otherwise an asset is uploaded through site2's internal proxy instead),
#      then run_experiment on client1 (if submit_job.py exists)
#   5. callers without the right client certificate are refused by the proxies
#   6. mahiru_down then mahiru_up: the registrations and assets survive, and
#      run_experiment works again without configure_sites
#   7. mahiru_up again changes nothing (changed=0 on every machine)
#   7b. the documentation's clean-slate loop: MAHIRU_WIPE=1 mahiru_down (says
#      what it deleted), mahiru_up, configure_sites twice, run_experiment
#   8. the RAM and disk the running deployment uses
#   9. vagrant destroy -f, and nothing of it is left
#  10. the data_access scenario: vagrant up, configure_sites, run_experiment
#      (the step runs at site1 and reads the input live from site2, which
#      keeps it: site1 never stores it), vagrant destroy -f
# Each phase prints how long it took. On failure (or Ctrl-C) the machines'
# container lists and the services' last log lines are shown, and everything
# is destroyed all the same. Must run as root (apt, docker).
#
# Environment: KEEP=1 leaves the machines of both scenarios running at the end
# (for poking around; `vagrant destroy -f` in scenarios/compute_to_data and
# scenarios/data_access when done).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MACHINES=(registry site1 site2 client1 client2)
SCENARIOS=(compute_to_data data_access)

# The scenario the commands below act on (its folder and machine names).
use_scenario() {
    SCENARIO="$1"
    SCENARIO_DIR="$ROOT/scenarios/$SCENARIO"
    PREFIX="mahiru-${SCENARIO//_/-}"
}
use_scenario compute_to_data
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"
export VAGRANT_DEFAULT_PROVIDER=docker
# Vagrant's checks for new versions and plugins reach out to the Internet.
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1
export ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_NOCOLOR=1

[[ -x "$VENV/bin/mahiru" ]] || die "no $VENV/bin/mahiru; run 'make venv' first"

test_start="$(now)"
phase_start=""
phase() {
    [[ -n "$phase_start" ]] && log_took "phase '$phase_name'" "$phase_start"
    phase_name="$1"
    phase_start="$(now)"
    log "=== $phase_name"
}

vg() { (cd "$SCENARIO_DIR" && vagrant "$@"); }

# A command on a machine, as the vagrant user, in the client environment
# when there is one.
on() {
    local machine="$1"
    shift
    vg ssh "$machine" --no-tty -c "set -a; [ -f ~/mahiru/client.env ] && . ~/mahiru/client.env; set +a; $*" 2>/dev/null
}

# Run a provisioner and keep its output; fail if Ansible failed.
provision() {
    local name="$1" out
    out="$LOGDIR/provision-$1-$(date +%s%N).log"
    shift
    if ! vg provision --provision-with "$name" "$@" >"$out" 2>&1; then
        grep -E 'fatal:|FAILED|ERROR' "$out" | tail -n 20 >&2 || tail -n 40 "$out" >&2
        die "provisioner $name failed on $*; see $out"
    fi
    LAST_LOG="$out"
}

# The same, but return its status instead of failing the test.
provision_soft() {
    local name="$1" out
    shift
    out="$LOGDIR/provision-$name-$(date +%s%N).log"
    LAST_LOG="$out"
    vg provision --provision-with "$name" "$@" >"$out" 2>&1 || {
        grep -E 'fatal:|FAILED|ERROR|msg' "$out" | tail -n 20 >&2
        return 1
    }
}

machine_containers() { docker ps -a --filter "name=^${1:-$PREFIX}-" --format '{{.Names}}'; }

destroy_all() {
    vg destroy -f >>"$LOGDIR/destroy.log" 2>&1 || true
    # Leftovers of an interrupted run that Vagrant no longer knows about.
    local c
    for c in $(machine_containers); do docker rm -f "$c" >/dev/null 2>&1 || true; done
    docker volume ls --format '{{.Name}}' | grep "^$PREFIX-.*-docker$" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}

show_state() {
    local m
    for m in "${MACHINES[@]}"; do
        docker inspect "$PREFIX-$m" >/dev/null 2>&1 || continue
        echo "--- $m: containers" >&2
        docker exec "$PREFIX-$m" sh -c 'command -v docker >/dev/null && docker ps -a --format "{{.Names}} {{.Status}}"' >&2 || true
        for c in mahiru-registry mahiru-site; do
            docker exec "$PREFIX-$m" sh -c "docker logs --tail 15 $c 2>&1" 2>/dev/null | sed "s/^/    $c: /" >&2 || true
        done
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((status != 0)); then
        log "FAILED in phase '${phase_name:-set-up}' (exit $status); state of the machines:"
        show_state
    fi
    if [[ "${KEEP:-}" == 1 && $status -eq 0 ]]; then
        log "KEEP=1: leaving the machines running"
    else
        log "destroying the machines"
        destroy_all
    fi
    log_took "deploy-test (exit $status)" "$test_start"
    exit "$status"
}

mkdir -p "$ROOT/build"
LOGDIR="$ROOT/build/deploy-test"
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"

phase "installing Vagrant and Ansible"
command -v vagrant >/dev/null || apt_install vagrant
command -v jq >/dev/null || apt_install jq
if ! command -v ansible-playbook >/dev/null; then
    "$VENV/bin/pip" install --quiet ansible >"$LOGDIR/pip-ansible.log" 2>&1 \
        || die "pip install ansible failed; see $LOGDIR/pip-ansible.log"
fi
log "$(vagrant --version), $(ansible-playbook --version 2>/dev/null | sed -n 1p)"

trap cleanup EXIT
trap 'exit 130' INT TERM
for scenario in "${SCENARIOS[@]}"; do
    use_scenario "$scenario"
    if [[ -n "$(machine_containers)" ]]; then
        log "removing the machines of an earlier run of $scenario"
        destroy_all
    fi
done
use_scenario compute_to_data

phase "building the images (make docker_tars, make assets)"
bash "$ROOT/scripts/build-docker-tars.sh"
bash "$ROOT/scripts/build-assets.sh"

host_mem_before="$(free -m | awk '/^Mem:/ { print $3 }')"
host_disk_before="$(df -m --output=used /var/lib/docker | tail -n 1)"

phase "vagrant up (base, mahiru_up on five machines)"
vg up --provider docker >"$LOGDIR/up.log" 2>&1 || {
    grep -E 'fatal:|FAILED|ERROR|error' "$LOGDIR/up.log" | tail -n 20 >&2
    die "vagrant up failed; see $LOGDIR/up.log"
}
for m in "${MACHINES[@]}"; do
    [[ "$(docker inspect --format '{{.State.Running}}' "$PREFIX-$m")" == true ]] || die "machine $m is not running"
done
registered="$(on client1 "\$HOME/mahiru/venv/bin/mahiru register show --json --cert \$HOME/mahiru/party/party-client.crt --key \$HOME/mahiru/party/party-client.key")"
sites="$(jq -r '[.sites[].id] | sort | join(" ")' <<<"$registered")"
[[ "$sites" == "site:party1.mahiru.example.org:site1 site:party2.mahiru.example.org:site2" ]] \
    || die "the registry lists the sites '$sites', not site1 and site2"
log "registry: $(jq -r '"version \(.version), \(.parties | length) parties, \(.sites | length) sites"' <<<"$registered")"

INPUT=asset:party2.mahiru.example.org:input:party2.mahiru.example.org:site2
phase "configure_sites on client1 and client2"
if [[ -f "$SCENARIO_DIR/client1/init_site.py" && -f "$SCENARIO_DIR/client2/init_site.py" ]]; then
    provision configure_sites client1 client2
else
    log "no client scripts yet (scenarios/$SCENARIO/client*/init_site.py): uploading one asset through site2's internal proxy instead"
    vg upload "$ROOT/build/assets/compute-to-data-input.tar" /home/vagrant/mahiru/input.tar client2 >/dev/null
    on client2 "\$HOME/mahiru/venv/bin/mahiru assets upload $INPUT \$HOME/mahiru/input.tar" >&2
fi

phase "run_experiment on client1"
experiment_failed=""
if [[ -f "$SCENARIO_DIR/client1/submit_job.py" ]]; then
    # A failed experiment is reported at the end: the other phases still
    # tell whether the deployment itself works.
    if provision_soft run_experiment client1; then
        sed -n '/TASK \[Show the plan/,/PLAY RECAP/p' "$LAST_LOG" | grep -v '^$' >&2
    else
        experiment_failed="run_experiment failed; see $LAST_LOG"
        log "$experiment_failed"
    fi
else
    log "no scenarios/$SCENARIO/client1/submit_job.py yet: skipped"
fi

phase "refusing callers without the right certificate"
# Through site1's proxies, from client1: no certificate, a certificate of
# the wrong CA (the network's, on the users' API), the wrong API's path.
on client1 "python3 - <<'PY'
import ssl, sys, urllib.error, urllib.request
home = '/home/vagrant/mahiru'
def call(url, cert=None):
    ctx = ssl.create_default_context(cafile=home + '/pki/ca.crt')
    if cert:
        ctx.load_cert_chain(*cert)
    try:
        return urllib.request.urlopen(url, context=ctx, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ssl.SSLError, ConnectionError) as error:
        return str(error)
user = (home + '/user/admin.crt', home + '/user/admin.key')
party = (home + '/party/party-client.crt', home + '/party/party-client.key')
checks = [
    ('internal API with the admin certificate', call('https://site1:1443/internal/status', user), 200),
    ('internal API without a certificate', call('https://site1:1443/internal/status'), 400),
    ('internal API with a network certificate', call('https://site1:1443/internal/status', party), 400),
    ('external path on the internal API', call('https://site1:1443/external/rules/changes', user), 404),
    ('external API without a certificate', call('https://site1/external/rules/changes'), 400),
    ('internal path on the external API', call('https://site1/internal/status', party), 404),
    ('registry without a certificate', call('https://registry/health'), 400),
]
failed = False
for what, got, expected in checks:
    print(f'{what}: {got} (expected {expected})')
    failed |= got != expected
sys.exit(1 if failed else 0)
PY" >&2 || die "a proxy let in a caller it should have refused (or refused a good one)"

snapshot() {
    on client1 "\$HOME/mahiru/venv/bin/mahiru register show --json --cert \$HOME/mahiru/party/party-client.crt --key \$HOME/mahiru/party/party-client.key" \
        | jq -c '{version, parties: [.parties[].id], sites: [.sites[].id]}'
    on client2 "\$HOME/mahiru/venv/bin/mahiru assets list --json" | jq -c '[.. | objects | select(has("id")) | .id] | sort'
}

phase "mahiru_down and mahiru_up: data survives"
before="$(snapshot)"
provision mahiru_down registry site1 site2
for m in registry site1 site2; do
    left="$(docker exec "$PREFIX-$m" docker ps -q --filter name=mahiru-)"
    [[ -z "$left" ]] || die "mahiru_down left containers running on $m"
done
provision mahiru_up "${MACHINES[@]}"
after="$(snapshot)"
log "before: ${before//$'\n'/ }"
log "after:  ${after//$'\n'/ }"
[[ "$before" == "$after" ]] || die "the data changed across mahiru_down/mahiru_up"
grep -q "$INPUT\|asset:" <<<"$after" || die "no assets at site2 to check persistence with"

phase "run_experiment again, without configure_sites (assets and rules survived)"
provision run_experiment client1
grep -q 'gave \[1, 34\]' "$LAST_LOG" || die "run_experiment after mahiru_up did not give [1, 34]; see $LAST_LOG"

phase "mahiru_up again changes nothing"
provision mahiru_up "${MACHINES[@]}"
grep -E '^[a-z0-9]+ +: ok=' "$LAST_LOG" | sed 's/^/    /' >&2
if grep -E '^[a-z0-9]+ +: ok=' "$LAST_LOG" | grep -qv ' changed=0 '; then
    die "the second mahiru_up changed something; see $LAST_LOG"
fi

phase "the documentation's loop from a clean slate: MAHIRU_WIPE=1 mahiru_down, mahiru_up, configure_sites (twice), run_experiment"
export MAHIRU_WIPE=1
provision mahiru_down registry site1 site2
unset MAHIRU_WIPE
grep -q 'wiped: the registry database' "$LAST_LOG" || die "mahiru_down did not say it wiped the registry; see $LAST_LOG"
grep -q 'wiped:.*the site database' "$LAST_LOG" || die "mahiru_down did not say it wiped the sites; see $LAST_LOG"
provision mahiru_up "${MACHINES[@]}"
wiped="$(on client2 "\$HOME/mahiru/venv/bin/mahiru assets list --json" | jq -c '[.. | objects | select(has("id")) | .id]')"
[[ "$wiped" == "[]" ]] || die "site2 still has assets after the wipe: $wiped"
provision configure_sites client1 client2
provision configure_sites client1 client2
provision run_experiment client1
grep -q 'gave \[1, 34\]' "$LAST_LOG" || die "run_experiment from a clean slate did not give [1, 34]; see $LAST_LOG"

phase "measuring the running deployment"
{
    printf '%-10s %-28s %10s\n' machine container memory
    for m in "${MACHINES[@]}"; do
        printf '%-10s %-28s %10s\n' "$m" "(machine)" "$(docker stats --no-stream --format '{{.MemUsage}}' "$PREFIX-$m" | cut -d/ -f1)"
        [[ "$m" == client* ]] && continue
        docker exec "$PREFIX-$m" docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' \
            | while read -r name usage _; do printf '%-10s %-28s %10s\n' "$m" "$name" "$usage"; done
        printf '%-10s %-28s %10s\n' "$m" "(engine disk)" \
            "$(docker exec "$PREFIX-$m" du -sh /var/lib/docker | cut -f1)"
    done
} >&2
host_mem_after="$(free -m | awk '/^Mem:/ { print $3 }')"
host_disk_after="$(df -m --output=used /var/lib/docker | tail -n 1)"
log "host memory in use grew by $((host_mem_after - host_mem_before)) MiB, disk by $((host_disk_after - host_disk_before)) MiB while the deployment ran"
log "machine images and volumes: $(docker system df --format '{{.Type}} {{.Size}}' | xargs)"

phase "vagrant destroy"
if [[ "${KEEP:-}" != 1 ]]; then
    vg destroy -f >"$LOGDIR/destroy.log" 2>&1 || die "vagrant destroy failed; see $LOGDIR/destroy.log"
    [[ -z "$(machine_containers)" ]] || die "machines left after vagrant destroy: $(machine_containers | xargs)"
    leftover="$(docker volume ls --format '{{.Name}}' | grep "^$PREFIX-" || true)"
    [[ -z "$leftover" ]] || die "volumes left after vagrant destroy: ${leftover//$'\n'/ }"
    leftover="$(docker network ls --format '{{.Name}}' | grep '^vagrant_network_' || true)"
    [[ -z "$leftover" ]] || log "note: networks left after vagrant destroy: ${leftover//$'\n'/ }"
fi

use_scenario data_access
phase "data_access: vagrant up"
vg up --provider docker >"$LOGDIR/up-data-access.log" 2>&1 || {
    grep -E 'fatal:|FAILED|ERROR|error' "$LOGDIR/up-data-access.log" | tail -n 20 >&2
    die "vagrant up (data_access) failed; see $LOGDIR/up-data-access.log"
}

phase "data_access: configure_sites on client1 and client2"
provision configure_sites client1 client2

phase "data_access: run_experiment on client1"
provision run_experiment client1
sed -n '/TASK \[Show the plan/,/PLAY RECAP/p' "$LAST_LOG" | grep -v '^$' >&2
grep -q 'gave \[1, 34\]' "$LAST_LOG" || die "the data_access experiment did not give [1, 34]; see $LAST_LOG"
grep -q "plan {'compute': 'site:party1.mahiru.example.org:site1'}" "$LAST_LOG" \
    || die "the data_access step did not run at site1; see $LAST_LOG"
# site2 granted the live access, and site1 stores no copy of the input.
granted="$(docker exec "$PREFIX-site2" docker logs mahiru-site 2>&1 | grep -c '"live access granted"' || true)"
((granted > 0)) || die "site2 logged no live access grant"
at_site1="$(on client1 "\$HOME/mahiru/venv/bin/mahiru assets list --json" | jq -r '[.. | objects | select(has("id")) | .id] | join(" ")')"
[[ "$at_site1" != *":input:"* ]] || die "site1 stores the input the step read live: $at_site1"
log "site2 granted live access $granted time(s); site1 stores: $at_site1"

phase "data_access: vagrant destroy"
if [[ "${KEEP:-}" != 1 ]]; then
    vg destroy -f >"$LOGDIR/destroy-data-access.log" 2>&1 || die "vagrant destroy failed; see $LOGDIR/destroy-data-access.log"
    for scenario in "${SCENARIOS[@]}"; do
        left="$(machine_containers "mahiru-${scenario//_/-}")"
        [[ -z "$left" ]] || die "machines left after vagrant destroy: ${left//$'\n'/ }"
    done
fi

phase "done"
[[ -z "$experiment_failed" ]] || die "$experiment_failed"
