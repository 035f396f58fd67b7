package rollup

import (
	"fmt"
	"strconv"
	"strings"
)

// InstanceSize is one EC2 instance type of the embedded table.
type InstanceSize struct {
	Type   string  `json:"type"`
	VCPU   int     `json:"vcpu"`
	MemGiB float64 `json:"memory_gib"`
	// BaselinePct is a burstable type's CPU baseline per vCPU (the share it
	// can hold without spending credits); 0 for fixed-performance types.
	BaselinePct float64 `json:"baseline_pct,omitempty"`
	Arch        string  `json:"arch"` // x86_64 or arm64
}

// Burstable reports whether the type runs on CPU credits (t family).
func (s InstanceSize) Burstable() bool { return s.BaselinePct > 0 }

func (s InstanceSize) String() string {
	return fmt.Sprintf("%s (%d vCPU, %s GiB)", s.Type, s.VCPU, strconv.FormatFloat(s.MemGiB, 'f', -1, 64))
}

// family is a row of the table: sizes smallest first.
type family struct {
	name     string
	arch     string
	class    byte    // 'c' compute, 'm' general, 'r' memory, 't' burstable
	gibPerVC float64 // memory per vCPU (fixed-performance families)
	sizes    []string
}

// The common families an agent host runs on (public EC2 specifications).
// Fixed-performance sizes: medium 1 vCPU, large 2, xlarge 4, Nxlarge 4·N;
// memory = vCPU × the family's GiB per vCPU. Metal sizes are left out.
var ec2Families = []family{
	{"m5", "x86_64", 'm', 4, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"}},
	{"m6i", "x86_64", 'm', 4, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"}},
	{"m6a", "x86_64", 'm', 4, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "48xlarge"}},
	{"m7i", "x86_64", 'm', 4, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"}},
	{"m7a", "x86_64", 'm', 4, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge", "48xlarge"}},
	{"m6g", "arm64", 'm', 4, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
	{"m7g", "arm64", 'm', 4, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
	{"c5", "x86_64", 'c', 2, []string{"large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge"}},
	{"c6i", "x86_64", 'c', 2, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"}},
	{"c7i", "x86_64", 'c', 2, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"}},
	{"c6g", "arm64", 'c', 2, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
	{"c7g", "arm64", 'c', 2, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
	{"r5", "x86_64", 'r', 8, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"}},
	{"r6i", "x86_64", 'r', 8, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"}},
	{"r7i", "x86_64", 'r', 8, []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"}},
	{"r6g", "arm64", 'r', 8, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
	{"r7g", "arm64", 'r', 8, []string{"medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"}},
}

// Burstable families: explicit vCPU, memory and baseline per vCPU.
var burstable = []struct {
	size        string
	vcpu        int
	memGiB      float64
	baselinePct float64
}{
	{"nano", 2, 0.5, 5}, {"micro", 2, 1, 10}, {"small", 2, 2, 20}, {"medium", 2, 4, 20},
	{"large", 2, 8, 30}, {"xlarge", 4, 16, 40}, {"2xlarge", 8, 32, 40},
}

var burstableFamilies = []struct{ name, arch, fixed string }{
	// fixed: where a box that outgrows CPU credits goes, same architecture.
	{"t3", "x86_64", "m7i"}, {"t3a", "x86_64", "m7a"}, {"t4g", "arm64", "m7g"},
}

// EC2Table is the embedded size table, by family, smallest first.
type EC2Table struct {
	byFamily map[string][]InstanceSize
	byType   map[string]InstanceSize
	class    map[string]byte
	fixedFor map[string]string
}

// NewEC2Table builds the table from the literals above.
func NewEC2Table() *EC2Table {
	t := &EC2Table{byFamily: map[string][]InstanceSize{}, byType: map[string]InstanceSize{}, class: map[string]byte{}, fixedFor: map[string]string{}}
	add := func(fam string, class byte, s InstanceSize) {
		t.byFamily[fam] = append(t.byFamily[fam], s)
		t.byType[s.Type] = s
		t.class[fam] = class
	}
	for _, f := range ec2Families {
		for _, size := range f.sizes {
			vcpu := sizeVCPU(size)
			add(f.name, f.class, InstanceSize{Type: f.name + "." + size, VCPU: vcpu, MemGiB: float64(vcpu) * f.gibPerVC, Arch: f.arch})
		}
	}
	for _, f := range burstableFamilies {
		for _, b := range burstable {
			add(f.name, 't', InstanceSize{Type: f.name + "." + b.size, VCPU: b.vcpu, MemGiB: b.memGiB, BaselinePct: b.baselinePct, Arch: f.arch})
		}
	}
	for _, f := range burstableFamilies {
		t.fixedFor[f.name] = f.fixed
	}
	return t
}

func sizeVCPU(size string) int {
	switch size {
	case "medium":
		return 1
	case "large":
		return 2
	case "xlarge":
		return 4
	}
	n, err := strconv.Atoi(strings.TrimSuffix(size, "xlarge"))
	if err != nil {
		panic("ec2 table: bad size " + size) // a typo in the literal above
	}
	return 4 * n
}

// Lookup returns the size of an instance type ("t3.large").
func (t *EC2Table) Lookup(instanceType string) (InstanceSize, bool) {
	s, ok := t.byType[strings.ToLower(strings.TrimSpace(instanceType))]
	return s, ok
}

func familyOf(instanceType string) string {
	fam, _, _ := strings.Cut(instanceType, ".")
	return fam
}

// Step returns the next size up (dir > 0) or down (dir < 0) in the same
// family; false at either end or for an unknown type.
func (t *EC2Table) Step(instanceType string, dir int) (InstanceSize, bool) {
	cur, ok := t.Lookup(instanceType)
	if !ok {
		return InstanceSize{}, false
	}
	sizes := t.byFamily[familyOf(cur.Type)]
	for i, s := range sizes {
		if s.Type != cur.Type {
			continue
		}
		j := i + dir
		if j < 0 || j >= len(sizes) {
			return InstanceSize{}, false
		}
		return sizes[j], true
	}
	return InstanceSize{}, false
}

// MoreMemory returns the type with the same vCPU count and more memory per
// vCPU (c → m → r, same generation and architecture), for a box short of
// memory but not of CPU. Burstable types and r families have none.
func (t *EC2Table) MoreMemory(instanceType string) (InstanceSize, bool) {
	cur, ok := t.Lookup(instanceType)
	if !ok {
		return InstanceSize{}, false
	}
	fam := familyOf(cur.Type)
	next := map[byte]byte{'c': 'm', 'm': 'r'}[t.class[fam]]
	if next == 0 {
		return InstanceSize{}, false
	}
	size := strings.TrimPrefix(cur.Type, fam+".")
	s, ok := t.byType[string(next)+fam[1:]+"."+size]
	return s, ok
}

// Fixed returns the fixed-performance type a burstable box moves to when it
// runs out of CPU credits: the smallest of the family named in
// burstableFamilies with at least the vCPUs and memory it has.
func (t *EC2Table) Fixed(instanceType string) (InstanceSize, bool) {
	cur, ok := t.Lookup(instanceType)
	if !ok || !cur.Burstable() {
		return InstanceSize{}, false
	}
	for _, s := range t.byFamily[t.fixedFor[familyOf(cur.Type)]] {
		if s.VCPU >= cur.VCPU && s.MemGiB >= cur.MemGiB {
			return s, true
		}
	}
	return InstanceSize{}, false
}
