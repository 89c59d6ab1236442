package cluster

import (
	"strconv"
	"sync"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16 is CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

// Slot is the hash slot of key: CRC16 of the key, or of its hash tag (the
// part between the first "{" and the first "}" after it, when not empty),
// modulo 16384.
func Slot(key []byte) int {
	for i, c := range key {
		if c != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j > i+1 {
					key = key[i+1 : j]
				}
				return int(crc16(key)) % Slots
			}
		}
		break
	}
	return int(crc16(key)) % Slots
}

var (
	tagsOnce sync.Once
	tags     [Slots]string
)

// Tag returns a hash tag, "{" + a short name + "}", that puts a key
// holding it in slot: a temporary key made to sit beside another one
// (RENAME within one node of a cluster needs both in the same slot).
// The first call builds the table of all slots (a few milliseconds).
func Tag(slot int) string {
	tagsOnce.Do(func() {
		left := Slots
		for n := 0; left > 0 && n < 1<<24; n++ { // all are found by n ≈ 180,000
			t := "{" + strconv.FormatInt(int64(n), 36) + "}"
			if s := Slot([]byte(t)); tags[s] == "" {
				tags[s] = t
				left--
			}
		}
	})
	return tags[slot]
}
