// Package deploy holds what operators drop in to run quiesce: a systemd
// unit (systemd/), Kubernetes manifests (k8s/) and, at the repository
// root, the Dockerfile that builds the container image.
//
// The package has no code. Its tests read those files and check what an
// operator relies on: that the supervisor waits longer than the gateway's
// shutdown sequence can take (drain timeout + notify timeout + 1s, plus a
// preStop drain on Kubernetes), that the probes name routes the real
// router answers (liveness stays 200 while draining, readiness does not),
// that a configuration error at start stops the restart loop (exit 78),
// and that the tokens stay readable by the gateway's user alone.
package deploy
