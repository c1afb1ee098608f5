package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// hashPassword returns the secret fields for password under function:
// bcrypt's own string, or Hono's Base64(sha-xxx(salt ‖ password)) with a
// random 16-byte salt.
func hashPassword(function, password string, bcryptCost int) (hash, salt string, err error) {
	switch function {
	case HashBcrypt:
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
		if err != nil {
			return "", "", err
		}
		return string(h), "", nil
	case HashSHA256, HashSHA512:
		var s [16]byte
		_, _ = rand.Read(s[:])
		return saltedHash(function, s[:], password), base64.StdEncoding.EncodeToString(s[:]), nil
	default:
		return "", "", fmt.Errorf("hash-function %q is not supported", function)
	}
}

func saltedHash(function string, salt []byte, password string) string {
	buf := append(append([]byte(nil), salt...), password...)
	if function == HashSHA512 {
		sum := sha512.Sum512(buf)
		return base64.StdEncoding.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(buf)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// verifyPassword reports whether password matches a stored hashed-password
// secret. A missing hash-function means sha-256, as in Hono.
func verifyPassword(s *Secret, password string) bool {
	switch s.HashFunction {
	case HashBcrypt:
		return bcrypt.CompareHashAndPassword([]byte(s.PasswordHash), []byte(password)) == nil
	case "", HashSHA256, HashSHA512:
		salt, err := base64.StdEncoding.DecodeString(s.Salt)
		if err != nil {
			return false
		}
		got := saltedHash(s.HashFunction, salt, password)
		return subtle.ConstantTimeCompare([]byte(got), []byte(s.PasswordHash)) == 1
	default:
		return false
	}
}
