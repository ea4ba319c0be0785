// Package deploy holds what operators drop in to run quiesce: a systemd
// unit (systemd/), Kubernetes manifests (k8s/), an HAProxy configuration
// for a fleet of gateways (haproxy/) and, at the repository root, the
// Dockerfile that builds the container image.
//
// The package has no code. Its tests read those files and check what an
// operator relies on: that the supervisor waits longer than the gateway's
// shutdown sequence can take (drain timeout + notify timeout + 1s, plus a
// preStop's announce and drain on Kubernetes), that the Kubernetes preStop
// announces the drain through the gateway's API on loopback with the
// gateway's own tokens file, that the probes name routes the real
// router answers (liveness stays 200 while draining, readiness does not),
// that a configuration error at start stops the restart loop (exit 78),
// that reloads and starts are checked with "quiesce check", that a node
// drain takes the gateways out one at a time (PodDisruptionBudget,
// anti-affinity), that the image is stamped with its version, and that
// the tokens stay readable by the gateway's user alone. haproxy_test.go
// checks the load balancer: haproxy -c accepts it, its health check marks
// a gateway down within the announce, sessions stick to a gateway by a
// consistent hash (internal events by their body's session), only safe
// retries are made, and nothing but turns and events is routed (it runs
// HAProxy in front of stand-in gateways). make_test.go checks
// the Makefile targets a newcomer runs first: make test says at once that
// it needs Chromium and HAProxy, and make bench leaves docs/PERFORMANCE.md alone
// unless UPDATE=1.
package deploy
