package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/internal/fakeproc"
	"github.com/quiesce-dev/quiesce/server"
)

// The files under test, relative to this package's directory.
const (
	unitFile   = "systemd/quiesce.service"
	k8sDir     = "k8s"
	dockerfile = "../Dockerfile"
)

// The defaults of quiesce run and quiesce drain that the files may rely on.
const (
	defaultDrainTimeout  = gateway.DefaultDrainTimeout
	defaultNotifyTimeout = gateway.DefaultNotifyTimeout
	defaultWaitTimeout   = 60 * time.Second // quiesce drain --wait --timeout
	closeAllowance       = time.Second      // the sequence's last step: closing connections, exiting
	// systemdDefaultStop is systemd's DefaultTimeoutStopSec, used when the
	// unit sets neither TimeoutStopSec nor TimeoutSec.
	systemdDefaultStop = 90 * time.Second
	// k8sDefaultGrace is Kubernetes' default terminationGracePeriodSeconds.
	k8sDefaultGrace = 30 * time.Second
)

// check is one property of a deployment file: fail returns "" when it
// holds, else what is wrong and what to fix.
type check struct {
	name string
	fail func() string
}

// runChecks runs each check as a subtest.
func runChecks(t *testing.T, file string, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			msg := c.fail()
			assert.Equalf(t, "", msg, "%s: %s", file, msg)
		})
	}
}

// shutdownBound is how long the shutdown sequence of a gateway started
// with run can take at most: drain timeout + notify timeout + 1s.
func shutdownBound(t *testing.T, file string, run command) (drain, notify, bound time.Duration) {
	t.Helper()
	drain, err := run.duration("drain-timeout", defaultDrainTimeout)
	require.NoErrorf(t, err, "%s", file)
	notify, err = run.duration("notify-timeout", defaultNotifyTimeout)
	require.NoErrorf(t, err, "%s", file)
	return drain, notify, drain + notify + closeAllowance
}

// TestSystemdUnit checks deploy/systemd/quiesce.service: systemd waits
// for the whole shutdown sequence, learns when the gateway is ready, does
// not restart a gateway that cannot start as configured, and leaves the
// gateway what the instance epoch needs.
func TestSystemdUnit(t *testing.T) {
	runChecks(t, unitFile, unitChecks(t, readFile(t, unitFile)))
}

// unitChecks parses the unit file data and returns its checks.
func unitChecks(t *testing.T, data string) []check {
	t.Helper()
	u, err := parseUnit(data)
	require.NoErrorf(t, err, "%s", unitFile)
	execStart, ok := u.last("Service", "ExecStart")
	require.Truef(t, ok, "%s: no ExecStart in [Service]", unitFile)
	words, err := splitCommand(execStart)
	require.NoErrorf(t, err, "%s: ExecStart", unitFile)
	run, err := parseQuiesce(words)
	require.NoErrorf(t, err, "%s: ExecStart must run \"quiesce run ...\": %q", unitFile, words)
	require.Equalf(t, "run", run.sub, "%s: ExecStart must run \"quiesce run ...\": %q", unitFile, words)
	drain, notify, bound := shutdownBound(t, unitFile, run)
	is := func(key, want, why string) func() string {
		return func() string {
			if got, _ := u.last("Service", key); got != want {
				return fmt.Sprintf("set %s=%s in [Service] (got %q): %s", key, want, got, why)
			}
			return ""
		}
	}

	return []check{
		{"TypeNotify", is("Type", "notify-reload",
			"the gateway tells systemd READY=1 once it serves (after its first reconcile with the drain marker), STOPPING=1 when its shutdown starts, "+
				"and RELOADING=1 ... READY=1 around a SIGHUP reload")},
		{"TimeoutStopSecAboveShutdownBound", func() string {
			key, raw, ok := "TimeoutStopSec", "", false
			if raw, ok = u.last("Service", key); !ok {
				key = "TimeoutSec"
				raw, ok = u.last("Service", key)
			}
			stop := systemdDefaultStop
			if ok {
				var err error
				if stop, err = parseTimespan(raw); err != nil {
					return fmt.Sprintf("%s=%s: %v; give a finite time span like 35s", key, raw, err)
				}
			}
			if stop <= bound {
				return fmt.Sprintf("TimeoutStopSec is %v, want more than --drain-timeout %v + --notify-timeout %v + 1s = %v "+
					"(from ExecStart), or systemd SIGKILLs a gateway inside its shutdown sequence: raise TimeoutStopSec or lower those timeouts",
					stop, drain, notify, bound)
			}
			return ""
		}},
		{"KillModeMixed", is("KillMode", "mixed",
			"SIGTERM must go to the gateway alone, which decides how its agents stop; control-group would signal every exec agent at once, process would leave stray children behind")},
		{"NoRestartOnConfigError", func() string {
			if !slices.Contains(u.words("Service", "RestartPreventExitStatus"), "78") {
				return fmt.Sprintf("add 78 to RestartPreventExitStatus (got %q): quiesce run exits 78 (EX_CONFIG) when it cannot start as configured "+
					"(tokens file, home held by another gateway, address in use), and restarting cannot fix that", u.words("Service", "RestartPreventExitStatus"))
			}
			return ""
		}},
		{"RestartOnFailure", is("Restart", "on-failure",
			"a gateway that failed while running (exit 1, a crash) should come back; a clean shutdown (exit 0) should not")},
		{"HomeIsStateDirectory", func() string {
			dirs := u.words("Service", "StateDirectory")
			home := run.flags["home"]
			if len(dirs) == 0 || home != "/var/lib/"+dirs[0] {
				return fmt.Sprintf("ExecStart's --home (%q) must be /var/lib/<StateDirectory> (StateDirectory=%q), so systemd creates it for the service's user", home, dirs)
			}
			if mode, _ := u.last("Service", "StateDirectoryMode"); mode != "0700" {
				return fmt.Sprintf("set StateDirectoryMode=0700 (got %q): the home holds the marker, spool and outbox, for the gateway's user alone", mode)
			}
			return ""
		}},
		{"NoDrainingExecStop", func() string {
			for _, v := range u["Service"]["ExecStop"] {
				w, err := splitCommand(v)
				if err != nil {
					return fmt.Sprintf("ExecStop=%s: %v", v, err)
				}
				if c, err := parseQuiesce(w); err == nil && c.sub == "drain" {
					return "remove ExecStop=" + v + ": under systemd PID 1 is systemd, so the instance epoch lasts the whole boot and the marker " +
						"a drain writes on the way down would bring the restarted service up draining; SIGTERM alone drains gracefully"
				}
			}
			return ""
		}},
		{"PID1Visible", func() string {
			if v, ok := u.last("Service", "ProtectProc"); ok && v != "default" {
				return fmt.Sprintf("remove ProtectProc=%s: it hides /proc/1/stat, so the gateway has no instance epoch (markers drain by presence only and never suppress)", v)
			}
			if v, _ := u.last("Service", "PrivatePIDs"); v == "yes" || v == "true" {
				return "remove PrivatePIDs=yes: the gateway would be its own PID 1, a new epoch at every restart of the service, and an operator's drain would not survive a respawn"
			}
			return ""
		}},
		{"Hardening", func() string {
			var missing []string
			for key, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes"} {
				if got, _ := u.last("Service", key); got != want {
					missing = append(missing, key+"="+want)
				}
			}
			slices.Sort(missing)
			if len(missing) > 0 {
				return "add " + strings.Join(missing, ", ") + " to [Service]: the gateway needs only its home, its tokens file and the network"
			}
			user, _ := u.last("Service", "User")
			dynamic, _ := u.last("Service", "DynamicUser")
			if dynamic != "yes" && (user == "" || user == "root" || user == "0") {
				return fmt.Sprintf("run as an unprivileged user: set User= to a system user or DynamicUser=yes (User=%q)", user)
			}
			return ""
		}},
		{"NotifySocketAllowed", func() string {
			if fams := u.words("Service", "RestrictAddressFamilies"); len(fams) > 0 && !slices.Contains(fams, "AF_UNIX") {
				return fmt.Sprintf("add AF_UNIX to RestrictAddressFamilies (got %q): sd_notify talks to systemd over a unix socket", fams)
			}
			return ""
		}},
		{"ReloadSendsSIGHUP", func() string {
			v, ok := u.last("Service", "ExecReload")
			if ok && !strings.Contains(v, "-HUP") && !strings.Contains(v, "-SIGHUP") {
				return fmt.Sprintf("ExecReload=%s: make it send SIGHUP to $MAINPID, which reloads the tokens file", v)
			}
			return ""
		}},
		{"ReloadChecksFirst", func() string {
			lines := u["Service"]["ExecReload"]
			for i, v := range lines {
				c, raw, err := quiesceLine(v)
				if err != nil || c.sub != "check" {
					continue
				}
				if c.flags["allow-running"] != "true" {
					return fmt.Sprintf("ExecReload=%s: add --allow-running: the running gateway holds the home, so the check fails without it and no reload ever happens", v)
				}
				if strings.HasPrefix(raw, "-") {
					return fmt.Sprintf("ExecReload=%s: drop the leading '-': a failing check must stop the reload before the SIGHUP", v)
				}
				if msg := sameFlags(c, run, "allow-running"); msg != "" {
					return "ExecReload's quiesce check: " + msg
				}
				if i == len(lines)-1 {
					return "ExecReload: put the quiesce check line before the line that sends SIGHUP"
				}
				return ""
			}
			return fmt.Sprintf("add ExecReload=quiesce check --allow-running <ExecStart's flags> before the SIGHUP (got %q): a tokens file that fails the checks "+
				"then fails \"systemctl reload\" with the reason, and the gateway is not asked to reload it", lines)
		}},
		{"StartPreChecks", func() string {
			for _, v := range u["Service"]["ExecStartPre"] {
				c, raw, err := quiesceLine(v)
				if err != nil || c.sub != "check" {
					continue
				}
				if !strings.HasPrefix(raw, "-") {
					return fmt.Sprintf("ExecStartPre=%s: prefix it with '-': RestartPreventExitStatus= looks only at the main process, so a failing "+
						"check would be restarted every RestartSec forever; run fails the same check itself with exit 78, which stops the loop", v)
				}
				return sameFlags(c, run)
			}
			return "add ExecStartPre=-quiesce check <ExecStart's flags>: every start-up check's outcome lands in the journal before run starts"
		}},
		{"SystemCallFilter", func() string {
			if !slices.Contains(u.words("Service", "SystemCallFilter"), "@system-service") {
				return fmt.Sprintf("set SystemCallFilter=@system-service (got %q): the gateway and its exec agent need nothing beyond it (docs/OPERATIONS.md)",
					u.words("Service", "SystemCallFilter"))
			}
			if v, _ := u.last("Service", "SystemCallErrorNumber"); v != "EPERM" {
				return fmt.Sprintf("set SystemCallErrorNumber=EPERM (got %q): an exec agent's command that makes a call outside the filter then gets an error it can report, instead of being killed by SIGSYS", v)
			}
			return ""
		}},
	}
}

// quiesceLine parses the unit command line v as a quiesce command; raw is
// v as written (with its exec prefix, e.g. "-").
func quiesceLine(v string) (c command, raw string, err error) {
	words, err := splitCommand(v)
	if err != nil {
		return command{}, v, err
	}
	c, err = parseQuiesce(words)
	return c, v, err
}

// sameFlags reports how check's flags differ from run's (besides the
// flags in extra, which only check has): a check of other flags checks
// something the gateway does not run with.
func sameFlags(check, run command, extra ...string) string {
	var diffs []string
	for name, v := range run.flags {
		if check.flags[name] != v {
			diffs = append(diffs, fmt.Sprintf("--%s %q (ExecStart has %q)", name, check.flags[name], v))
		}
	}
	for name, v := range check.flags {
		if _, ok := run.flags[name]; !ok && !slices.Contains(extra, name) {
			diffs = append(diffs, fmt.Sprintf("--%s %q (ExecStart has none)", name, v))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	slices.Sort(diffs)
	return "give it the same flags as ExecStart, or it checks something the gateway does not run with: " + strings.Join(diffs, ", ")
}

// image is what the Dockerfile's runtime stage gives a container.
type image struct {
	entrypoint    []string
	entrypointErr error // the ENTRYPOINT is not in the exec form
	env           map[string]string
	user          string
	expose        []string
}

// readFile returns the content of the file at path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// readDockerfile parses the Dockerfile data and returns its stages and
// what its last (runtime) stage sets.
func readDockerfile(t *testing.T, data string) ([]stage, image) {
	t.Helper()
	stages, err := parseDockerfile(data)
	require.NoErrorf(t, err, "Dockerfile")
	require.NotEqual(t, 0, len(stages), "Dockerfile: no FROM")
	final := stages[len(stages)-1]
	img := image{env: map[string]string{}}
	for _, in := range final.instrs {
		switch in.cmd {
		case "ENTRYPOINT":
			img.entrypoint, img.entrypointErr = execForm(in)
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					img.env[k] = strings.Trim(v, `"`)
				}
			}
		case "USER":
			img.user = in.args
		case "EXPOSE":
			img.expose = append(img.expose, strings.Fields(in.args)...)
		}
	}
	return stages, img
}

// buildinfoPkg is the package whose Version and Revision the image build
// stamps with -ldflags -X.
const buildinfoPkg = "github.com/quiesce-dev/quiesce/internal/buildinfo"

// stampOf returns the value "-X sym=value" gives in the build command
// line cmd.
func stampOf(cmd, sym string) (string, bool) {
	f := strings.Fields(strings.NewReplacer(`"`, " ", `'`, " ").Replace(cmd))
	for i, w := range f {
		if w == "-X" && i+1 < len(f) {
			if v, ok := strings.CutPrefix(f[i+1], sym+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// TestDockerfile checks the image build: a builder stage makes a static
// binary, the runtime stage is small, runs as a non-root user and starts
// "quiesce run" as PID 1 on the port it exposes.
func TestDockerfile(t *testing.T) {
	runChecks(t, "Dockerfile", dockerChecks(t, readFile(t, dockerfile)))
}

// dockerChecks parses the Dockerfile data and returns its checks.
func dockerChecks(t *testing.T, data string) []check {
	t.Helper()
	stages, img := readDockerfile(t, data)
	final := stages[len(stages)-1]
	runFlags := func() (command, string) {
		if img.entrypointErr != nil {
			return command{}, img.entrypointErr.Error() + ": quiesce is then PID 1 and gets the SIGTERM itself"
		}
		c, err := parseQuiesce(img.entrypoint)
		if err != nil || c.sub != "run" {
			return c, fmt.Sprintf("ENTRYPOINT must be the exec form [\"quiesce\", \"run\", ...] (got %q): quiesce is then PID 1 and gets the SIGTERM itself", img.entrypoint)
		}
		return c, ""
	}
	return []check{
		{"MultiStage", func() string {
			if len(stages) < 2 {
				return fmt.Sprintf("want a builder stage and a runtime stage (%d FROM): the runtime image needs no Go toolchain", len(stages))
			}
			if strings.HasPrefix(final.from, "golang") {
				return fmt.Sprintf("the runtime stage is based on %s: copy the binary into a small base instead", final.from)
			}
			return ""
		}},
		{"StaticBuild", func() string {
			for _, st := range stages[:len(stages)-1] {
				cgoEnv := false
				for _, in := range st.instrs {
					if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=0") {
						cgoEnv = true
					}
					if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
						continue
					}
					switch {
					case !cgoEnv && !strings.Contains(in.args, "CGO_ENABLED=0"):
						return fmt.Sprintf("line %d: build with CGO_ENABLED=0: the runtime base has no C library", in.line)
					case !strings.Contains(in.args, "-trimpath"):
						return fmt.Sprintf("line %d: build with -trimpath: no build machine paths in the binary", in.line)
					case !strings.Contains(in.args, "./cmd/quiesce"):
						return fmt.Sprintf("line %d: build ./cmd/quiesce", in.line)
					}
					return ""
				}
			}
			return "no builder stage runs \"CGO_ENABLED=0 go build -trimpath ... ./cmd/quiesce\""
		}},
		{"NonRootUser", func() string {
			uid, _, _ := strings.Cut(img.user, ":")
			if uid == "" || uid == "root" || uid == "0" {
				return fmt.Sprintf("set USER to a non-root user in the runtime stage (got %q), e.g. USER 65532:65532", img.user)
			}
			return ""
		}},
		{"StampsVersionAndRevision", func() string {
			for _, st := range stages[:len(stages)-1] {
				for _, in := range st.all("RUN") {
					if !strings.Contains(in.args, "go build") {
						continue
					}
					args := map[string]bool{}
					for _, a := range st.all("ARG") {
						name, _, _ := strings.Cut(a.args, "=")
						args[name] = true
					}
					for _, sym := range []string{buildinfoPkg + ".Version", buildinfoPkg + ".Revision"} {
						v, ok := stampOf(in.args, sym)
						arg := strings.Trim(v, "${}")
						switch {
						case !ok:
							return fmt.Sprintf("line %d: stamp the binary: -ldflags \"-X %s=${...}\" (the build context has no .git, so quiesce_build_info would say (devel)/unknown)", in.line, sym)
						case !strings.HasPrefix(v, "$") || !args[arg]:
							return fmt.Sprintf("line %d: -X %s=%s: set it from a build ARG declared in the stage (ARG %s), so docker build --build-arg sets it", in.line, sym, v, arg)
						}
					}
					return ""
				}
			}
			return "no builder stage runs go build"
		}},
		{"EntrypointRunsGateway", func() string {
			_, msg := runFlags()
			return msg
		}},
		{"ListensOnExposedPort", func() string {
			run, msg := runFlags()
			if msg != "" {
				return msg
			}
			host, port, err := net.SplitHostPort(run.flags["addr"])
			if err != nil || (host != "0.0.0.0" && host != "" && host != "::") {
				return fmt.Sprintf("ENTRYPOINT needs --addr 0.0.0.0:<port> (got %q): the default 127.0.0.1 is unreachable from outside the container", run.flags["addr"])
			}
			if !slices.Contains(img.expose, port) && !slices.Contains(img.expose, port+"/tcp") {
				return fmt.Sprintf("EXPOSE %s: the port of --addr (EXPOSE has %q)", port, img.expose)
			}
			return ""
		}},
		{"HomeIsAbsolute", func() string {
			run, msg := runFlags()
			if msg != "" {
				return msg
			}
			if home := run.flags["home"]; !path.IsAbs(home) {
				return fmt.Sprintf("ENTRYPOINT needs an absolute --home for the volume (got %q)", home)
			}
			return ""
		}},
	}
}

// pod is the StatefulSet's pod template, its gateway container and what
// the gateway runs with.
type pod struct {
	sts       map[string]any
	spec      map[string]any
	container map[string]any
	inits     []map[string]any
	run       command // the gateway's effective "quiesce run" command line
	home      string
	img       image
}

// readPod finds the StatefulSet and its "quiesce" container in deploy/k8s
// and works out the container's command line from the image's
// entrypoint and the container's args.
func readPod(t *testing.T, docs []manifest, img image) pod {
	t.Helper()
	var p pod
	for _, d := range docs {
		switch d.kind() {
		case "StatefulSet":
			p.sts = d.obj
		case "Deployment", "DaemonSet", "ReplicaSet":
			assert.Fail(t, fmt.Sprintf("%s: a %s runs quiesce: use a StatefulSet with volumeClaimTemplates (one home per pod); "+
				"a Deployment's rolling update can start the new pod on a shared volume before the old one stopped", d.file, d.kind()))
		}
	}
	require.NotNilf(t, p.sts, "%s: no StatefulSet: run quiesce as one (volumeClaimTemplates give each pod its own home)", k8sDir)
	p.spec, _ = at(p.sts, "spec", "template", "spec").(map[string]any)
	for _, c := range objects(at(p.spec, "containers")) {
		if c["name"] == "quiesce" {
			p.container = c
		}
	}
	require.NotNilf(t, p.container, "%s: the StatefulSet has no container named \"quiesce\"", k8sDir)
	p.inits = objects(at(p.spec, "initContainers"))
	p.img = img
	argv := append(slices.Clone(p.img.entrypoint), strs(p.container["args"])...)
	if cmd := strs(p.container["command"]); len(cmd) > 0 {
		argv = append(cmd, strs(p.container["args"])...)
	}
	run, err := parseQuiesce(argv)
	require.NoErrorf(t, err, "%s: the quiesce container must run \"quiesce run ...\" (the image's ENTRYPOINT plus args): %q", k8sDir, argv)
	require.Equalf(t, "run", run.sub, "%s: the quiesce container must run \"quiesce run ...\" (the image's ENTRYPOINT plus args): %q", k8sDir, argv)
	p.run = run
	p.home = p.homeOf(run)
	return p
}

// homeOf returns the home a quiesce command in the gateway container acts
// on: --home, else QUIESCE_HOME from the container or the image.
func (p pod) homeOf(c command) string {
	if h, ok := c.flags["home"]; ok {
		return h
	}
	for _, e := range objects(p.container["env"]) {
		if e["name"] == "QUIESCE_HOME" {
			return fmt.Sprint(e["value"])
		}
	}
	if h, ok := p.img.env["QUIESCE_HOME"]; ok {
		return h
	}
	return "./.quiesce"
}

// securityValue returns a securityContext field for the container c: its
// own, else the pod's.
func (p pod) securityValue(c map[string]any, key string) any {
	if v := at(c, "securityContext", key); v != nil {
		return v
	}
	return at(p.spec, "securityContext", key)
}

// mountFor returns the volume mount of container c that holds file, and
// the path of file inside it.
func mountFor(c map[string]any, file string) (mount map[string]any, rel string) {
	best := ""
	for _, m := range objects(c["volumeMounts"]) {
		mp := strings.TrimSuffix(fmt.Sprint(m["mountPath"]), "/")
		if (file == mp || strings.HasPrefix(file, mp+"/")) && len(mp) > len(best) {
			mount, best = m, mp
		}
	}
	if mount == nil {
		return nil, ""
	}
	return mount, strings.TrimPrefix(strings.TrimPrefix(file, best), "/")
}

// volume returns the pod volume named name.
func (p pod) volume(name any) map[string]any {
	for _, v := range objects(at(p.spec, "volumes")) {
		if v["name"] == name {
			return v
		}
	}
	return nil
}

// probePort resolves a probe's httpGet port (a number or a port name) to
// the container port number.
func (p pod) probePort(probe string) (int, error) {
	port := at(p.container, probe, "httpGet", "port")
	switch v := port.(type) {
	case int:
		return v, nil
	case string:
		for _, cp := range objects(p.container["ports"]) {
			if cp["name"] == v {
				n, ok := cp["containerPort"].(int)
				if !ok {
					return 0, fmt.Errorf("port %q has no numeric containerPort", v)
				}
				return n, nil
			}
		}
		return 0, fmt.Errorf("%s names port %q, which the container does not declare", probe, v)
	}
	return 0, fmt.Errorf("%s has no httpGet port", probe)
}

// TestKubernetes checks deploy/k8s: the grace period covers the preStop
// drain and the whole shutdown sequence, one home per pod, probes on the
// routes that mean ready and alive, and tokens only the gateway's user
// can read, without fsGroup.
func TestKubernetes(t *testing.T) {
	_, img := readDockerfile(t, readFile(t, dockerfile))
	runChecks(t, k8sDir, k8sChecks(t, parseManifests(t, readManifests(t, k8sDir)), img))
}

// k8sChecks returns the checks of the manifests docs for a gateway image
// img.
func k8sChecks(t *testing.T, docs []manifest, img image) []check {
	t.Helper()
	p := readPod(t, docs, img)
	drain, notify, bound := shutdownBound(t, k8sDir, p.run)
	preStop := func() (command, string) {
		argv := strs(at(p.container, "lifecycle", "preStop", "exec", "command"))
		c, err := parseQuiesce(argv)
		if err != nil || c.sub != "drain" || c.flags["wait"] != "true" {
			return c, fmt.Sprintf("the quiesce container needs lifecycle.preStop.exec.command [\"quiesce\", \"drain\", \"--wait\", \"--timeout\", ...] (got %q): "+
				"the pod stops taking new turns and its turns finish before the kubelet's SIGTERM", argv)
		}
		return c, ""
	}
	probePath := func(probe, want, why string) func() string {
		return func() string {
			if got := at(p.container, probe, "httpGet", "path"); got != want {
				return fmt.Sprintf("%s.httpGet.path is %v, want %s: %s", probe, got, want, why)
			}
			port, err := p.probePort(probe)
			if err != nil {
				return err.Error()
			}
			_, addrPort, _ := net.SplitHostPort(p.run.flags["addr"])
			if strconv.Itoa(port) != addrPort {
				return fmt.Sprintf("%s probes port %d, but the gateway listens on %q (--addr)", probe, port, p.run.flags["addr"])
			}
			return ""
		}
	}

	return []check{
		{"GracePeriodCoversPreStopAndShutdown", func() string {
			pre, msg := preStop()
			if msg != "" {
				return msg
			}
			wait, err := pre.duration("timeout", defaultWaitTimeout)
			if err != nil {
				return err.Error()
			}
			announce, err := pre.duration("announce", 0)
			if err != nil {
				return err.Error()
			}
			grace := k8sDefaultGrace
			if v, ok := p.spec["terminationGracePeriodSeconds"].(int); ok {
				grace = time.Duration(v) * time.Second
			}
			if need := announce + wait + bound; grace < need {
				return fmt.Sprintf("terminationGracePeriodSeconds is %v, want at least preStop --announce %v + --timeout %v + --drain-timeout %v + --notify-timeout %v + 1s = %v: "+
					"the kubelet counts the grace period from the pod's deletion, preStop included, then sends SIGKILL", grace, announce, wait, drain, notify, need)
			}
			return ""
		}},
		{"PreStopAnnounces", func() string {
			pre, msg := preStop()
			if msg != "" {
				return msg
			}
			announce, err := pre.duration("announce", 0)
			if err != nil {
				return err.Error()
			}
			period, _ := at(p.container, "readinessProbe", "periodSeconds").(int)
			if period == 0 {
				period = 10 // Kubernetes' default
			}
			failures, _ := at(p.container, "readinessProbe", "failureThreshold").(int)
			if failures == 0 {
				failures = 3 // Kubernetes' default
			}
			markDown := time.Duration(period*failures) * time.Second
			switch {
			case announce <= 0:
				return "add --announce D to the preStop drain (with --url): a pod being deleted leaves the endpoints at once, but kube-proxy, " +
					"ingress controllers and meshes learn it seconds later, and without the announce every turn they still send is refused " +
					"(503 draining); with it /readyz fails while the gate stays open for D (docs/OPERATIONS.md, \"Behind a load balancer\")"
			case announce > gateway.MaxAnnounce:
				return fmt.Sprintf("preStop --announce %v: at most %v", announce, gateway.MaxAnnounce)
			case announce < markDown:
				return fmt.Sprintf("preStop --announce %v is shorter than the readiness probe's periodSeconds %d x failureThreshold %d = %v: "+
					"a drain announced in a running pod would close its gate before the pod leaves the endpoints", announce, period, failures, markDown)
			}
			return ""
		}},
		{"PreStopReachesTheGateway", func() string {
			pre, msg := preStop()
			if msg != "" {
				return msg
			}
			_, port, _ := net.SplitHostPort(p.run.flags["addr"])
			tokens, ok := p.run.flags["tokens-file"]
			if !ok {
				tokens = path.Join(p.home, "tokens")
			}
			want := fmt.Sprintf("--url http://127.0.0.1:%s --tokens-file %s", port, tokens)
			raw, ok := pre.flags["url"]
			if !ok {
				return "preStop drains the home directly, and only the live gateway's API can announce: give it " + want +
					" (the gateway's port on loopback, the gateway's own tokens file, mounted in this container)"
			}
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "http" || u.Port() != port || !slices.Contains([]string{"127.0.0.1", "localhost", "::1"}, u.Hostname()) {
				return fmt.Sprintf("preStop --url %s: the gateway listens on %q (--addr) in this container: give it %s (loopback: the pod "+
					"may already have left the Service)", raw, p.run.flags["addr"], want)
			}
			if got := pre.flags["tokens-file"]; got != tokens {
				return fmt.Sprintf("preStop --tokens-file %q: the gateway reads its tokens from %s; give the preStop the same file (%s)", got, tokens, want)
			}
			return ""
		}},
		{"OneHomePerPod", func() string {
			if !path.IsAbs(p.home) {
				return fmt.Sprintf("the gateway's home %q is not an absolute path on a volume", p.home)
			}
			mount, rel := mountFor(p.container, p.home)
			if mount == nil || rel != "" {
				return fmt.Sprintf("mount a volume at the gateway's home %s", p.home)
			}
			for _, claim := range objects(at(p.sts, "spec", "volumeClaimTemplates")) {
				if at(claim, "metadata", "name") == mount["name"] {
					return ""
				}
			}
			return fmt.Sprintf("the home %s is mounted from %v, which is not one of the StatefulSet's volumeClaimTemplates: "+
				"each pod needs its own claim (one home, one gateway)", p.home, mount["name"])
		}},
		{"ReadinessIsReadyz", probePath("readinessProbe", "/readyz",
			"it answers 503 once the gateway drains or shuts down, so the pod leaves the Service's endpoints")},
		{"LivenessIsHealthz", probePath("livenessProbe", "/healthz",
			"it stays 200 while the process serves, draining included; a liveness probe on /readyz would restart every draining pod")},
		{"NoFSGroup", func() string {
			if v := at(p.spec, "securityContext", "fsGroup"); v != nil {
				return fmt.Sprintf("remove securityContext.fsGroup (%v): the kubelet then makes the Secret's files group-readable (0400 becomes 0440) and quiesce refuses group-readable tokens", v)
			}
			return ""
		}},
		{"SecretDefaultMode0400", func() string {
			found := false
			for _, v := range objects(at(p.spec, "volumes")) {
				if v["secret"] == nil {
					continue
				}
				found = true
				if mode := at(v, "secret", "defaultMode"); mode != 0o400 {
					return fmt.Sprintf("volume %v: set secret.defaultMode: 0400 (got %v): quiesce refuses tokens readable by group or others", v["name"], mode)
				}
			}
			if !found {
				return "no Secret volume: the tokens should come from a Secret"
			}
			for _, d := range docs {
				for _, raw := range rawScalars(d.node, "defaultMode") {
					if strings.HasPrefix(raw, "0o") {
						return fmt.Sprintf("%s: write defaultMode: 0400 or 256, not %s: Kubernetes reads YAML 1.1, where %s is a string", d.file, raw, raw)
					}
				}
			}
			return ""
		}},
		{"TokensPrivateToTheGatewayUser", func() string {
			file, ok := p.run.flags["tokens-file"]
			if !ok {
				return "pass --tokens-file: keep the tokens (from the Secret) out of the home volume"
			}
			mount, rel := mountFor(p.container, file)
			if mount == nil {
				return fmt.Sprintf("--tokens-file %s is on no volume of the quiesce container", file)
			}
			vol := p.volume(mount["name"])
			if vol["secret"] != nil {
				return fmt.Sprintf("--tokens-file %s is read straight from Secret volume %v, whose files belong to root: the gateway's user cannot read them at mode 0400, "+
					"and fsGroup would make them group-readable; copy the file in an init container instead", file, mount["name"])
			}
			uid := fmt.Sprint(p.securityValue(p.container, "runAsUser"))
			for _, ic := range p.inits {
				for _, im := range objects(ic["volumeMounts"]) {
					if im["name"] != mount["name"] {
						continue
					}
					script := strings.Join(append(strs(ic["command"]), strs(ic["args"])...), " ")
					dst := path.Join(fmt.Sprint(im["mountPath"]), rel)
					if !strings.Contains(script, dst) {
						continue
					}
					if !strings.Contains(script, "-o "+uid) || !(strings.Contains(script, "-m 0400") || strings.Contains(script, "-m 0600")) {
						return fmt.Sprintf("init container %v must write %s owned by the gateway's user %s, mode 0400 or 0600 (install -o %s -g %s -m 0400 ...)",
							ic["name"], dst, uid, uid, uid)
					}
					return ""
				}
			}
			return fmt.Sprintf("nothing writes --tokens-file %s: an init container should copy it from the Secret (install -o %s -m 0400)", file, uid)
		}},
		{"NonRootReadOnly", func() string {
			c := p.container
			if p.securityValue(c, "runAsNonRoot") != true {
				return "set securityContext.runAsNonRoot: true for the quiesce container"
			}
			if at(c, "securityContext", "readOnlyRootFilesystem") != true {
				return "set securityContext.readOnlyRootFilesystem: true for the quiesce container: it writes only its home"
			}
			if at(c, "securityContext", "allowPrivilegeEscalation") != false {
				return "set securityContext.allowPrivilegeEscalation: false for the quiesce container"
			}
			return ""
		}},
		{"NoSharedProcessNamespace", func() string {
			if p.spec["shareProcessNamespace"] == true {
				return "remove shareProcessNamespace: PID 1 would be the pause process, so a restarted container keeps the epoch and a leftover drain marker drains it"
			}
			return ""
		}},
		{"ServicesReachTheGateway", func() string {
			labels, _ := at(p.sts, "spec", "template", "metadata", "labels").(map[string]any)
			n := 0
			for _, d := range docs {
				if d.kind() != "Service" {
					continue
				}
				n++
				sel, _ := at(d.obj, "spec", "selector").(map[string]any)
				for k, v := range sel {
					if labels[k] != v {
						return fmt.Sprintf("Service %v selects %s=%v, which the pods do not carry", at(d.obj, "metadata", "name"), k, v)
					}
				}
				for _, sp := range objects(at(d.obj, "spec", "ports")) {
					ok := false
					for _, cp := range objects(p.container["ports"]) {
						ok = ok || sp["targetPort"] == cp["name"] || sp["targetPort"] == cp["containerPort"]
					}
					if !ok {
						return fmt.Sprintf("Service %v: targetPort %v is not a port of the quiesce container", at(d.obj, "metadata", "name"), sp["targetPort"])
					}
				}
			}
			if n == 0 {
				return "no Service: clients need one"
			}
			if name := at(p.sts, "spec", "serviceName"); name == nil {
				return "set the StatefulSet's spec.serviceName to its headless Service"
			}
			return ""
		}},
		{"PreStopTimeoutIsNotAFailure", func() string {
			pre, msg := preStop()
			if msg != "" {
				return msg
			}
			if pre.flags["exit-zero-on-timeout"] != "true" {
				return "add --exit-zero-on-timeout to the preStop drain: a wait that times out exits 3 and the kubelet records FailedPreStopHook, " +
					"though SIGTERM follows anyway and the shutdown sequence takes over (the image has no shell for \"|| true\")"
			}
			return ""
		}},
		{"PodDisruptionBudget", func() string {
			labels, _ := at(p.sts, "spec", "template", "metadata", "labels").(map[string]any)
			replicas, _ := at(p.sts, "spec", "replicas").(int)
			for _, d := range docs {
				if d.kind() != "PodDisruptionBudget" {
					continue
				}
				sel, _ := at(d.obj, "spec", "selector", "matchLabels").(map[string]any)
				if len(sel) == 0 {
					return fmt.Sprintf("%s: the PodDisruptionBudget needs spec.selector.matchLabels", d.file)
				}
				for k, v := range sel {
					if labels[k] != v {
						return fmt.Sprintf("%s: the PodDisruptionBudget selects %s=%v, which the pods do not carry", d.file, k, v)
					}
				}
				maxU, hasMax := at(d.obj, "spec", "maxUnavailable").(int)
				minA, hasMin := at(d.obj, "spec", "minAvailable").(int)
				switch {
				case hasMax && maxU < 1, hasMin && minA >= replicas:
					return fmt.Sprintf("%s: the PodDisruptionBudget lets no pod go (maxUnavailable %v, minAvailable %v, replicas %d): every node drain would hang; use maxUnavailable: 1",
						d.file, at(d.obj, "spec", "maxUnavailable"), at(d.obj, "spec", "minAvailable"), replicas)
				case !hasMax && !hasMin:
					return fmt.Sprintf("%s: set the PodDisruptionBudget's maxUnavailable: 1 (a number)", d.file)
				}
				return ""
			}
			return "add a PodDisruptionBudget (maxUnavailable: 1) for the gateways: a node drain then takes them out one at a time, each through its preStop drain"
		}},
		{"PodAntiAffinity", func() string {
			labels, _ := at(p.sts, "spec", "template", "metadata", "labels").(map[string]any)
			aa, _ := at(p.spec, "affinity", "podAntiAffinity").(map[string]any)
			var terms []map[string]any
			for _, w := range objects(aa["preferredDuringSchedulingIgnoredDuringExecution"]) {
				if t, ok := w["podAffinityTerm"].(map[string]any); ok {
					terms = append(terms, t)
				}
			}
			terms = append(terms, objects(aa["requiredDuringSchedulingIgnoredDuringExecution"])...)
			for _, term := range terms {
				if term["topologyKey"] != "kubernetes.io/hostname" {
					continue
				}
				sel, _ := at(term, "labelSelector", "matchLabels").(map[string]any)
				ok := len(sel) > 0
				for k, v := range sel {
					ok = ok && labels[k] == v
				}
				if ok {
					return ""
				}
			}
			return "add a podAntiAffinity term on topologyKey kubernetes.io/hostname selecting the gateway pods: otherwise they may all land on one node, which one node failure or drain takes down at once"
		}},
		{"ImageSetByKustomize", func() string {
			image := fmt.Sprint(p.container["image"])
			name := image
			if i := strings.LastIndex(name, "@"); i >= 0 {
				name = name[:i]
			}
			if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
				name = name[:i]
			}
			for _, d := range docs {
				if d.kind() != "Kustomization" {
					continue
				}
				for _, img := range objects(d.obj["images"]) {
					if img["name"] == name {
						return ""
					}
				}
				return fmt.Sprintf("%s: add images: [{name: %s, newTag: ...}]: the image is then set with \"kustomize edit set image %s=<registry>/quiesce:<version>\" (or an overlay), without editing statefulset.yaml", d.file, name, name)
			}
			return "no kustomization.yaml"
		}},
		{"KustomizationListsEveryManifest", func() string {
			var listed []string
			for _, d := range docs {
				if d.kind() == "Kustomization" {
					listed = strs(d.obj["resources"])
				}
			}
			if listed == nil {
				return ""
			}
			for _, d := range docs {
				if d.kind() != "Kustomization" && !slices.Contains(listed, d.file) {
					return fmt.Sprintf("add %s to kustomization.yaml's resources, or kubectl apply -k leaves it out", d.file)
				}
			}
			return ""
		}},
	}
}

// TestProbesOnTheRealRouter requests the probe paths of deploy/k8s from a
// real gateway behind the real router: readiness answers 200 while
// running and 503 once draining, liveness 200 in both, so a drain takes
// the pod out of the Service without getting it restarted.
func TestProbesOnTheRealRouter(t *testing.T) {
	_, img := readDockerfile(t, readFile(t, dockerfile))
	p := readPod(t, parseManifests(t, readManifests(t, k8sDir)), img)
	readiness := fmt.Sprint(at(p.container, "readinessProbe", "httpGet", "path"))
	liveness := fmt.Sprint(at(p.container, "livenessProbe", "httpGet", "path"))

	proc := t.TempDir()
	require.NoError(t, fakeproc.Write(proc, "boot-deploy-test", 4242))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(gateway.Config{Home: filepath.Join(t.TempDir(), "home"), ProcRoot: proc, WatchInterval: -1, Logger: logger})
	require.NoErrorf(t, err, "gateway.New")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoErrorf(t, gw.Start(ctx), "gateway Start")
	t.Cleanup(func() {
		// A forced shutdown: nothing is in flight, so it stops at once.
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_, err := gw.Shutdown(sctx, true)
		assert.NoErrorf(t, err, "gateway shutdown did not finish within 10s")
		assert.NoErrorf(t, gw.Close(), "gateway close")
	})
	srv, err := server.New(server.Config{Gateway: gw, Tokens: server.NewTokens(map[string]string{"ops": "deploy-test-token-0123456789"}), Logger: logger})
	require.NoErrorf(t, err, "server.New")
	get := func(path string) int {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
		return rec.Code
	}

	for _, tt := range []struct {
		state           string
		setup           func() error
		ready, liveness int
	}{
		{state: "running", setup: func() error { return nil }, ready: http.StatusOK, liveness: http.StatusOK},
		{state: "draining", setup: func() error {
			_, err := gw.BeginDrain(ctx, gateway.DrainRequest{Principal: "deploy-test"})
			return err
		}, ready: http.StatusServiceUnavailable, liveness: http.StatusOK},
	} {
		t.Run(tt.state, func(t *testing.T) {
			require.NoErrorf(t, tt.setup(), "%s", tt.state)
			got := get(readiness)
			assert.Equalf(t, tt.ready, got, "%s: readinessProbe path %s answers %d while %s, want %d: point the readiness probe at /readyz", k8sDir, readiness, got, tt.state, tt.ready)
			got = get(liveness)
			assert.Equalf(t, tt.liveness, got, "%s: livenessProbe path %s answers %d while %s, want %d: point the liveness probe at /healthz", k8sDir, liveness, got, tt.state, tt.liveness)
		})
	}
}

// TestChecksCatchBrokenFiles breaks one thing at a time in a copy of a
// deployment file and requires the check that guards it to fail, with a
// message that says what to fix: the checks above cannot pass vacuously.
func TestChecksCatchBrokenFiles(t *testing.T) {
	unit := readFile(t, unitFile)
	docker := readFile(t, dockerfile)
	k8s := readManifests(t, k8sDir)
	_, img := readDockerfile(t, docker)
	const sts = "statefulset.yaml"

	for _, tt := range []struct {
		name      string
		file      string // unitFile, dockerfile or a file of deploy/k8s
		old, new  string // the edit: old must occur in the file
		check     string // the check that must fail
		wantInMsg string // what its message must say
	}{
		{"StopTimeoutTooShort", unitFile, "TimeoutStopSec=35s", "TimeoutStopSec=25s", "TimeoutStopSecAboveShutdownBound", "raise TimeoutStopSec"},
		{"DrainTimeoutRaisedAlone", unitFile, "quiesce run --home /var/lib/quiesce --addr 127.0.0.1:8470 --tokens-file /etc/quiesce/tokens --drain-timeout 25s",
			"quiesce run --home /var/lib/quiesce --addr 127.0.0.1:8470 --tokens-file /etc/quiesce/tokens --drain-timeout 40s", "TimeoutStopSecAboveShutdownBound", "44s"},
		{"StopTimeoutInMinutes", unitFile, "TimeoutStopSec=35s", "TimeoutStopSec=0min 20s", "TimeoutStopSecAboveShutdownBound", "20s"},
		{"TypeSimple", unitFile, "Type=notify-reload", "Type=simple", "TypeNotify", "READY=1"},
		{"TypeNotifyWithoutReload", unitFile, "Type=notify-reload", "Type=notify", "TypeNotify", "RELOADING=1"},
		{"ReloadWithoutCheck", unitFile, "ExecReload=/usr/local/bin/quiesce check", "#ExecReload=/usr/local/bin/quiesce check", "ReloadChecksFirst", "check --allow-running"},
		{"ReloadCheckWithoutAllowRunning", unitFile, "check --allow-running", "check", "ReloadChecksFirst", "add --allow-running"},
		{"ReloadChecksOtherTokens", unitFile, "check --allow-running --home /var/lib/quiesce --addr 127.0.0.1:8470 --tokens-file /etc/quiesce/tokens",
			"check --allow-running --home /var/lib/quiesce --addr 127.0.0.1:8470 --tokens-file /etc/quiesce/other", "ReloadChecksFirst", "--tokens-file"},
		{"StartPreFailureNotIgnored", unitFile, "ExecStartPre=-/usr", "ExecStartPre=/usr", "StartPreChecks", "RestartPreventExitStatus="},
		{"NoSyscallFilter", unitFile, "SystemCallFilter=@system-service", "", "SystemCallFilter", "@system-service"},
		{"SyscallKills", unitFile, "SystemCallErrorNumber=EPERM", "", "SystemCallFilter", "SIGSYS"},
		{"KillModeControlGroup", unitFile, "\nKillMode=mixed\n", "\nKillMode=control-group\n", "KillModeMixed", "KillMode=mixed"},
		{"RestartLoopOnConfigError", unitFile, "RestartPreventExitStatus=2 78", "RestartPreventExitStatus=2", "NoRestartOnConfigError", "add 78"},
		{"ExecStopDrains", unitFile, "\nKillMode=mixed\n", "\nExecStop=/usr/local/bin/quiesce drain --wait --home /var/lib/quiesce\nKillMode=mixed\n",
			"NoDrainingExecStop", "restarted service up draining"},
		{"ProcHidden", unitFile, "NoNewPrivileges=yes", "NoNewPrivileges=yes\nProtectProc=invisible", "PID1Visible", "/proc/1/stat"},
		{"HomeElsewhere", unitFile, "quiesce run --home /var/lib/quiesce", "quiesce run --home /srv/quiesce", "HomeIsStateDirectory", "StateDirectory"},

		{"GraceTooShort", sts, "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 50", "GracePeriodCoversPreStopAndShutdown", "54s"},
		{"PreStopLonger", sts, "- 20s", "- 40s", "GracePeriodCoversPreStopAndShutdown", "1m14s"},
		{"PreStopAnnounceLonger", sts, "- 5s\n", "- 20s\n", "GracePeriodCoversPreStopAndShutdown", "--announce 20s"},
		{"NoPreStop", sts, "- drain\n", "- status\n", "GracePeriodCoversPreStopAndShutdown", "preStop"},
		{"PreStopWithoutAnnounce", sts, "                  - --announce\n                  - 5s\n", "", "PreStopAnnounces", "add --announce"},
		{"PreStopAnnounceZero", sts, "                  - --announce\n                  - 5s\n", "                  - --announce\n                  - 0s\n", "PreStopAnnounces", "add --announce"},
		{"PreStopAnnounceBeforeReadiness", sts, "                  - --announce\n                  - 5s\n", "                  - --announce\n                  - 1s\n", "PreStopAnnounces", "failureThreshold"},
		{"PreStopOnTheHome", sts, "                  - --url\n                  - http://127.0.0.1:8470\n", "                  - --home\n                  - /var/lib/quiesce\n",
			"PreStopReachesTheGateway", "--url http://127.0.0.1:8470 --tokens-file /run/quiesce/tokens"},
		{"PreStopOtherPort", sts, "- http://127.0.0.1:8470", "- http://127.0.0.1:8471", "PreStopReachesTheGateway", "listens on"},
		{"PreStopThroughTheService", sts, "- http://127.0.0.1:8470", "- http://quiesce:8470", "PreStopReachesTheGateway", "loopback"},
		{"PreStopOtherTokens", sts, "                  - --tokens-file\n                  - /run/quiesce/tokens\n", "                  - --tokens-file\n                  - /tmp/tokens\n",
			"PreStopReachesTheGateway", "same file"},
		{"FSGroup", sts, "runAsNonRoot: true\n        seccompProfile", "runAsNonRoot: true\n        fsGroup: 65532\n        seccompProfile", "NoFSGroup", "group-readable"},
		{"SecretGroupReadable", sts, "defaultMode: 0400", "defaultMode: 0440", "SecretDefaultMode0400", "defaultMode: 0400"},
		{"SecretModeYAML12", sts, "defaultMode: 0400", "defaultMode: 0o400", "SecretDefaultMode0400", "YAML 1.1"},
		{"ReadinessOnHealthz", sts, "path: /readyz", "path: /healthz", "ReadinessIsReadyz", "503"},
		{"LivenessOnReadyz", sts, "path: /healthz", "path: /readyz", "LivenessIsHealthz", "restart every draining pod"},
		{"ProbeWrongPort", sts, "containerPort: 8470", "containerPort: 8080", "ReadinessIsReadyz", "listens on"},
		{"TokensStraightFromSecret", sts, "- name: tokens\n          emptyDir:\n            medium: Memory",
			"- name: tokens\n          secret:\n            secretName: quiesce-tokens\n            defaultMode: 0400\n          x-was:\n            medium: Memory",
			"TokensPrivateToTheGatewayUser", "belong to root"},
		{"TokensCopyWorldReadable", sts, "-m 0400", "-m 0644", "TokensPrivateToTheGatewayUser", "mode 0400 or 0600"},
		{"HomeOnEmptyDir", sts, "- name: quiesce-home\n              mountPath: /var/lib/quiesce\n            - name: tokens\n              mountPath: /run/quiesce\n              readOnly: true",
			"- name: scratch\n              mountPath: /var/lib/quiesce\n            - name: tokens\n              mountPath: /run/quiesce\n              readOnly: true",
			"OneHomePerPod", "volumeClaimTemplates"},
		{"WritableRoot", sts, "allowPrivilegeEscalation: false\n            readOnlyRootFilesystem: true\n            capabilities:\n              drop: [\"ALL\"]\n          resources",
			"allowPrivilegeEscalation: false\n            capabilities:\n              drop: [\"ALL\"]\n          resources", "NonRootReadOnly", "readOnlyRootFilesystem"},
		{"SharedPIDNamespace", sts, "automountServiceAccountToken: false", "automountServiceAccountToken: false\n      shareProcessNamespace: true",
			"NoSharedProcessNamespace", "pause"},
		{"ServiceWrongPort", "service.yaml", "targetPort: http\n---", "targetPort: web\n---", "ServicesReachTheGateway", "targetPort"},
		{"ManifestNotInKustomization", "kustomization.yaml", "  - service.yaml\n", "", "KustomizationListsEveryManifest", "service.yaml"},
		{"PreStopTimeoutFails", sts, "                  - --exit-zero-on-timeout\n", "", "PreStopTimeoutIsNotAFailure", "FailedPreStopHook"},
		{"NoPDB", "pdb.yaml", "kind: PodDisruptionBudget", "kind: ConfigMap", "PodDisruptionBudget", "add a PodDisruptionBudget"},
		{"PDBBlocksDrains", "pdb.yaml", "maxUnavailable: 1", "maxUnavailable: 0", "PodDisruptionBudget", "node drain would hang"},
		{"PDBOtherPods", "pdb.yaml", "    matchLabels:\n      app.kubernetes.io/name: quiesce", "    matchLabels:\n      app.kubernetes.io/name: other", "PodDisruptionBudget", "do not carry"},
		{"NoAntiAffinity", sts, "topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone", "PodAntiAffinity", "one node"},
		{"ImageNotInKustomization", "kustomization.yaml", "  - name: ghcr.io/quiesce-dev/quiesce\n", "  - name: ghcr.io/other/quiesce\n", "ImageSetByKustomize", "kustomize edit set image"},

		{"RootUser", dockerfile, "USER 65532:65532", "USER root", "NonRootUser", "non-root"},
		{"NotStamped", dockerfile, "-X github.com/quiesce-dev/quiesce/internal/buildinfo.Revision=${REVISION}", "", "StampsVersionAndRevision", "(devel)/unknown"},
		{"StampWithoutArg", dockerfile, "ARG VERSION=\n", "", "StampsVersionAndRevision", "ARG VERSION"},
		{"CgoBuild", dockerfile, "CGO_ENABLED=0 GOOS", "GOOS", "StaticBuild", "CGO_ENABLED=0"},
		{"NoTrimpath", dockerfile, "-trimpath ", "", "StaticBuild", "-trimpath"},
		{"SingleStage", dockerfile, "FROM gcr.io/distroless/static-debian12:nonroot", "FROM golang:1.26", "MultiStage", "small base"},
		{"ShellEntrypoint", dockerfile, `ENTRYPOINT ["quiesce", "run", "--addr", "0.0.0.0:8470", "--home", "/var/lib/quiesce"]`,
			"ENTRYPOINT quiesce run --addr 0.0.0.0:8470 --home /var/lib/quiesce", "EntrypointRunsGateway", "exec form"},
		{"LoopbackOnly", dockerfile, `"0.0.0.0:8470"`, `"127.0.0.1:8470"`, "ListensOnExposedPort", "unreachable"},
		{"ExposeOtherPort", dockerfile, "EXPOSE 8470", "EXPOSE 8080", "ListensOnExposedPort", "EXPOSE 8470"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			edit := func(s string) string {
				require.Containsf(t, s, tt.old, "%s no longer contains %q: update this case", tt.file, tt.old)
				return strings.Replace(s, tt.old, tt.new, 1)
			}
			var checks []check
			switch tt.file {
			case unitFile:
				checks = unitChecks(t, edit(unit))
			case dockerfile:
				checks = dockerChecks(t, edit(docker))
			default:
				files := maps.Clone(k8s)
				files[tt.file] = edit(files[tt.file])
				checks = k8sChecks(t, parseManifests(t, files), img)
			}
			i := slices.IndexFunc(checks, func(c check) bool { return c.name == tt.check })
			require.GreaterOrEqualf(t, i, 0, "no check %q", tt.check)
			msg := checks[i].fail()
			if assert.NotEmptyf(t, msg, "%s passes after %s: %q → %q; the check guards nothing", tt.check, tt.file, tt.old, tt.new) {
				assert.Containsf(t, msg, tt.wantInMsg, "%s's message", tt.check)
			}
		})
	}
}

// TestFlagsExist builds quiesce and checks that every command line in the
// deployment files uses only flags its command has, with a value exactly
// when the flag takes one: a renamed or misspelt flag would make the
// gateway exit 2 at start (or the preStop hook fail) on the first deploy.
func TestFlagsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the quiesce binary")
	}
	bin := filepath.Join(t.TempDir(), "quiesce")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/quiesce")
	out, err := build.CombinedOutput()
	require.NoErrorf(t, err, "go build ./cmd/quiesce: %v\n%s", err, out)
	// flagsOf returns the flags "quiesce <sub> -h" lists: name → whether
	// it is boolean (listed without a value type).
	flagsOf := func(sub string) map[string]bool {
		out, err := exec.CommandContext(ctx, bin, sub, "-h").CombinedOutput()
		require.NoErrorf(t, err, "quiesce %s -h: %v\n%s", sub, err, out)
		flags := map[string]bool{}
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(line, "  -") {
				flags[strings.TrimPrefix(f[0], "-")] = len(f) == 1
			}
		}
		require.NotEqualf(t, 0, len(flags), "quiesce %s -h lists no flags:\n%s", sub, out)
		return flags
	}

	unit, err := parseUnit(readFile(t, unitFile))
	require.NoError(t, err)
	_, img := readDockerfile(t, readFile(t, dockerfile))
	p := readPod(t, parseManifests(t, readManifests(t, k8sDir)), img)
	lines := []struct {
		where string
		argv  []string
	}{
		{"Dockerfile ENTRYPOINT", img.entrypoint},
		{k8sDir + " quiesce container (ENTRYPOINT + args)", append(slices.Clone(img.entrypoint), strs(p.container["args"])...)},
		{k8sDir + " preStop", strs(at(p.container, "lifecycle", "preStop", "exec", "command"))},
	}
	for _, key := range []string{"ExecStart", "ExecStop", "ExecStartPre", "ExecStopPost", "ExecReload"} {
		for _, v := range unit["Service"][key] {
			argv, err := splitCommand(v)
			require.NoError(t, err)
			if filepath.Base(argv[0]) == "quiesce" {
				lines = append(lines, struct {
					where string
					argv  []string
				}{unitFile + " " + key, argv})
			}
		}
	}
	known := map[string]map[string]bool{}
	for _, l := range lines {
		c, err := parseQuiesce(l.argv)
		if !assert.NoErrorf(t, err, "%s", l.where) {
			continue
		}
		if known[c.sub] == nil {
			known[c.sub] = flagsOf(c.sub)
		}
		for name, value := range c.flags {
			isBool, ok := known[c.sub][name]
			if !assert.Truef(t, ok, "%s: quiesce %s has no flag --%s (see quiesce %s -h)", l.where, c.sub, name, c.sub) {
				continue
			}
			if !assert.Equalf(t, isBool, boolFlags[name], "%s: --%s is boolean in quiesce %s: %t, but this test parses it as boolean: %t; fix boolFlags", l.where, name, c.sub, isBool, boolFlags[name]) {
				continue
			}
			if !isBool {
				assert.NotEmptyf(t, value, "%s: --%s needs a value", l.where, name)
			}
		}
	}
}

// TestImageStampReachesTheBinary builds quiesce with the -ldflags -X
// stamps of the Dockerfile's build (values of the test's own) and runs
// "quiesce version --json": the linker silently ignores a -X naming a
// symbol that does not exist, so only running the binary shows that a
// stamped image reports its version and revision (and quiesce_build_info,
// which reads the same package, with it).
func TestImageStampReachesTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the quiesce binary")
	}
	stages, _ := readDockerfile(t, readFile(t, dockerfile))
	var build string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.all("RUN") {
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		}
	}
	want := map[string]string{buildinfoPkg + ".Version": "v0.0.0-deploy-test", buildinfoPkg + ".Revision": "0123456789abcdef0123456789abcdef01234567"}
	var ldflags []string
	for sym, v := range want {
		_, ok := stampOf(build, sym)
		require.Truef(t, ok, "Dockerfile: the go build does not stamp %s", sym)
		ldflags = append(ldflags, "-X", sym+"="+v)
	}
	bin := filepath.Join(t.TempDir(), "quiesce")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", bin, "../cmd/quiesce").CombinedOutput()
	require.NoErrorf(t, err, "go build: %v\n%s", err, out)
	out, err = exec.CommandContext(ctx, bin, "version", "--json").Output()
	require.NoErrorf(t, err, "quiesce version --json")
	var got struct{ Version, Revision string }
	err = json.Unmarshal(out, &got)
	require.NoErrorf(t, err, "quiesce version --json: %v: %s", err, out)
	assert.Equal(t, want[buildinfoPkg+".Version"], got.Version, "the version of a binary stamped as the Dockerfile does: the -X symbol names nothing")
	assert.Equal(t, want[buildinfoPkg+".Revision"], got.Revision, "the revision of a binary stamped as the Dockerfile does: the -X symbol names nothing")
}
