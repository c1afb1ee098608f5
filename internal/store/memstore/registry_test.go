package memstore_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func TestRegistryConformance(t *testing.T) {
	storetest.TestRegistry(t, func(*testing.T) store.RegistryStore { return memstore.NewRegistry() })
}
