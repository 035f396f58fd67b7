package rollup

import "testing"

func TestEC2Table(t *testing.T) {
	tb := NewEC2Table()
	for fam, sizes := range tb.byFamily {
		for i := 1; i < len(sizes); i++ {
			if sizes[i].VCPU < sizes[i-1].VCPU || sizes[i].MemGiB <= sizes[i-1].MemGiB {
				t.Errorf("%s: %s does not grow from %s", fam, sizes[i], sizes[i-1])
			}
		}
	}
	for _, want := range []InstanceSize{
		{Type: "t3.medium", VCPU: 2, MemGiB: 4, BaselinePct: 20, Arch: "x86_64"},
		{Type: "t4g.2xlarge", VCPU: 8, MemGiB: 32, BaselinePct: 40, Arch: "arm64"},
		{Type: "m7i.48xlarge", VCPU: 192, MemGiB: 768, Arch: "x86_64"},
		{Type: "c5.9xlarge", VCPU: 36, MemGiB: 72, Arch: "x86_64"},
		{Type: "r7g.medium", VCPU: 1, MemGiB: 8, Arch: "arm64"},
	} {
		if got, ok := tb.Lookup(want.Type); !ok || got != want {
			t.Errorf("lookup %s: %+v %v", want.Type, got, ok)
		}
	}
	steps := []struct {
		from string
		dir  int
		want string
	}{
		{"t3.large", -1, "t3.medium"},
		{"t3.large", +1, "t3.xlarge"},
		{"m6i.large", +1, "m6i.xlarge"},
		{"m6i.large", -1, ""},
		{"c7g.16xlarge", +1, ""},
		{"c5.4xlarge", +1, "c5.9xlarge"},
		{" T3A.Small ", -1, "t3a.micro"},
		{"x9.large", +1, ""},
		{"", +1, ""},
	}
	for _, s := range steps {
		got, ok := tb.Step(s.from, s.dir)
		if got.Type != s.want || ok != (s.want != "") {
			t.Errorf("step %q %+d: %q %v, want %q", s.from, s.dir, got.Type, ok, s.want)
		}
	}
	for from, want := range map[string]string{"c7g.xlarge": "m7g.xlarge", "m6i.2xlarge": "r6i.2xlarge", "r7i.large": "", "t3.large": "", "m7a.medium": ""} {
		if got, _ := tb.MoreMemory(from); got.Type != want {
			t.Errorf("more memory than %s: %q, want %q", from, got.Type, want)
		}
	}
	for from, want := range map[string]string{"t3.medium": "m7i.large", "t3.micro": "m7i.large", "t3.2xlarge": "m7i.2xlarge", "t4g.small": "m7g.large", "t3a.xlarge": "m7a.xlarge", "m6i.large": ""} {
		if got, _ := tb.Fixed(from); got.Type != want {
			t.Errorf("fixed for %s: %q, want %q", from, got.Type, want)
		}
	}
}
