package cli

import (
	"github.com/klauspost/compress/zstd"
	"github.com/spf13/pflag"

	"redback/internal/pack"
)

// packFlags are the flags that choose how objects are stored: zstd level
// and age recipients (shared by snapshot and ship).
type packFlags struct {
	level     string
	encryptTo []string
}

func (f *packFlags) addFlags(fs *pflag.FlagSet, defaultLevel string) {
	fs.StringArrayVar(&f.encryptTo, "encrypt-to", nil, "age recipient (age1...) or recipients file; repeatable")
	fs.StringVar(&f.level, "compression", defaultLevel, "zstd level: fastest, default, better, best")
}

// options validates the flags; mistakes are usage errors.
func (f *packFlags) options() (pack.Options, error) {
	level, err := zstdLevel(f.level)
	if err != nil {
		return pack.Options{}, err
	}
	rs, err := pack.ParseRecipients(f.encryptTo)
	if err != nil {
		return pack.Options{}, usagef("--encrypt-to age1...", "--encrypt-to: %v", err)
	}
	return pack.Options{Level: level, Recipients: rs}, nil
}

func zstdLevel(s string) (zstd.EncoderLevel, error) {
	switch s {
	case "fastest":
		return zstd.SpeedFastest, nil
	case "default", "":
		return zstd.SpeedDefault, nil
	case "better":
		return zstd.SpeedBetterCompression, nil
	case "best":
		return zstd.SpeedBestCompression, nil
	}
	return 0, usagef("--compression default", "--compression must be fastest, default, better or best, not %q", s)
}
