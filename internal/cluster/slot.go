package cluster

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
