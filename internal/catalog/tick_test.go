package catalog

import "testing"

func TestTickMarkers(t *testing.T) {
	line := AppendTick(nil, 1700000000123)
	if string(line) != "#TICK:1700000000123\r\n" {
		t.Fatalf("%q", line)
	}
	if ms, ok := ParseTick(line); !ok || ms != 1700000000123 {
		t.Fatal(ms, ok)
	}
	for _, l := range []string{"#TS:1700000000\r\n", "#TICK:\r\n", "#TICK:-5\r\n", "#TICK:x\r\n"} {
		if _, ok := ParseTick([]byte(l)); ok {
			t.Errorf("ParseTick(%q) ok", l)
		}
	}
	args := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	for _, c := range []struct {
		args   [][]byte
		marker bool
		ms     int64
	}{
		{args("PUBLISH", "__redback__:tick", "17"), true, 17},
		{args("spublish", "__redback__:tick{a1}", "18"), true, 18},
		{args("PUBLISH", "__redback__:other", "19"), true, 0},
		{args("PUBLISH", "__redback__:tick", "x"), true, 0},
		{args("PUBLISH", "__redback__:tickx", "20"), true, 0},
		{args("PUBLISH", "__redback__:tick", "21:20"), true, 21},
		{args("PUBLISH", "__redback__:tick", "21:22"), true, 0},
		{args("PUBLISH", "__redback__:tick", "21:"), true, 0},
		{args("PUBLISH", "__redback__:tick", "21:x"), true, 0},
		{args("PUBLISH", "news", "1"), false, 0},
		{args("SET", "__redback__:tick", "1"), false, 0},
		{args("PUBLISH", "__redback__:tick"), false, 0},
	} {
		tk, ok := TickOf(c.args)
		if IsMarkerPublish(c.args) != c.marker || tk.Ms != c.ms || ok != (c.ms > 0) {
			t.Errorf("%q: marker %v tick %+v %v", c.args, IsMarkerPublish(c.args), tk, ok)
		}
		if ok {
			if back, _ := TickOf(args("PUBLISH", TickChannel, tk.Message())); back != tk {
				t.Errorf("%q: Message %q reads back as %+v", c.args, tk.Message(), back)
			}
		}
	}
}
