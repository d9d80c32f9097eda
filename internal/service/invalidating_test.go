package service

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"testing"

	"github.com/signerd/signerd/internal/store"
)

// TestInvalidatingStoreWrapsEveryWrite: every store method that records an
// audit event (a change) is declared on invalidatingStore itself, so the
// cache is invalidated and the event clipped after it. invalidatingStore
// embeds store.Store, so a write method added to the interface and not
// here would be promoted silently, bypassing both (as TrustKeyVersion and
// CarryTrust once were).
func TestInvalidatingStoreWrapsEveryWrite(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "cache.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || len(fd.Recv.List) != 1 {
			continue
		}
		if id, ok := fd.Recv.List[0].Type.(*ast.Ident); ok && id.Name == "invalidatingStore" {
			declared[fd.Name.Name] = true
		}
	}
	evType := reflect.TypeFor[store.AuditEvent]()
	st := reflect.TypeFor[store.Store]()
	writes := 0
	for i := range st.NumMethod() {
		m := st.Method(i)
		for j := range m.Type.NumIn() {
			if m.Type.In(j) != evType {
				continue
			}
			writes++
			if !declared[m.Name] {
				t.Errorf("store.Store.%s records an audit event but invalidatingStore does not wrap it", m.Name)
			}
		}
	}
	if writes < 10 {
		t.Fatalf("found %d store methods taking an audit event: the test no longer sees them", writes)
	}
}
