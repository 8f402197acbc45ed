// pglocks_key computed in Go with the standard library only.
//
// Prints "key<TAB>pglocks_key" for each argument, or for the specification's
// vectors when given none.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
)

// PglocksKey is the bigint lock that pglocks_acquire(key) takes.
// A Go string holds bytes; keys must be UTF-8, as Go source literals are.
func PglocksKey(key string) int64 {
	sum := sha256.Sum256([]byte(key))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

var specVectors = []string{"", "some lock", "orders:42", "Grüße", "日本語"}

func main() {
	keys := os.Args[1:]
	if len(keys) == 0 {
		keys = specVectors
	}
	for _, key := range keys {
		fmt.Printf("%s\t%d\n", key, PglocksKey(key))
	}
}
