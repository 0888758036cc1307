#!/usr/bin/env bash
# strata's main job, from a fresh machine: set-up, a two-node local cluster, the demo
# workload (examples/demo/: a frontend and a backend that call each other across
# nodes), and one request through it. The cluster stays up for you to explore;
# `node dist/bin/strata down` removes all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

strata() { node dist/bin/strata "$@"; }

# The default cluster: examples/demo/demo.yaml points the frontend at its API socket.
strata up --nodes 2
strata apply -f examples/demo/

# "<pod IP> <node> <pod name>" of each running pod labelled app=$1.
pods() {
  strata get pods -n demo -l "app=$1" -o json | node -e '
    let text = ""; process.stdin.on("data", (c) => (text += c)).on("end", () => {
      for (const pod of JSON.parse(text).items)
        if (pod.status?.phase === "Running" && pod.status.podIP)
          console.log(`${pod.status.podIP} ${pod.spec.nodeName} ${pod.metadata.name}`);
    });'
}

# The frontend Service's virtual IP.
cluster_ip() {
  strata get service "$1" -n demo -o json | node -e '
    let text = ""; process.stdin.on("data", (c) => (text += c)).on("end", () => {
      console.log(JSON.parse(text).spec.clusterIP ?? "");
    });'
}

# From node-1's namespace to the frontend Service's virtual IP: the node's nftables rules
# pick a frontend pod, which resolves `backend` through the cluster DNS and calls that
# Service in turn, reaching backend pods on both nodes.
echo "waiting for the frontend to answer"
answer=""
frontend_ip=$(cluster_ip frontend)
for _ in $(seq 1 120); do
  if answer=$(ip netns exec strata-default-node-1 curl -fsS --max-time 3 "http://$frontend_ip/" 2>/dev/null); then
    break
  fi
  answer=""
  sleep 1
done
if [ -z "$answer" ]; then
  echo "demo: the frontend did not answer within 2 minutes; what the cluster shows:" >&2
  strata get pods -n demo -o wide >&2 || true
  echo "logs: node dist/bin/strata logs -n demo POD; take it down: node dist/bin/strata down" >&2
  exit 1
fi

echo
echo "\$ ip netns exec strata-default-node-1 curl http://$frontend_ip/    (the frontend Service)"
echo "$answer"
frontend=$(pods frontend | head -n1 | cut -d' ' -f3)
cat <<NEXT

The demo cluster is up. Try (strata is node dist/bin/strata):
  strata get pods -n demo -o wide         pods, their IPs and nodes
  strata get services -A                  Services and their virtual IPs (kube-dns included)
  strata describe service backend -n demo the backend's endpoints
  strata logs -n demo $frontend
  strata exec -n demo $frontend -- curl -s http://backend/
  strata exec -n demo $frontend -- dig +short backend.demo.svc.cluster.local
  strata status                           nodes, pod CIDRs, processes
  strata down                             remove everything strata made
NEXT
