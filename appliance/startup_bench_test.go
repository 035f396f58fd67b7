package appliance

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkStartup is what a process costs before it does anything:
// `fleetmeter version`, a report over an empty state dir (all a report
// spends before its first file: runtime, package inits, configuration,
// price table), and a bare Go binary built the same way, the floor.
//
//	go test -run '^$' -bench Startup -count 6 ./appliance/ | benchstat -
func BenchmarkStartup(b *testing.B) {
	bin := os.Getenv("FLEETMETER_TEST_BIN")
	if bin == "" {
		var err error
		if bin, err = buildOnce(); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	hello := filepath.Join(dir, "hello")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", hello, ".")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	empty := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(empty, "agents"), 0o755); err != nil {
		b.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"bare-go", []string{hello}},
		{"version", []string{bin, "version"}},
		{"empty-report", []string{bin, "report", "daily", "--json", "--openclaw-dir", empty}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				cmd := exec.Command(c.args[0], c.args[1:]...)
				cmd.Env = []string{"HOME=" + home, "TZ=UTC"}
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", c.args, err, out)
				}
			}
		})
	}
}
