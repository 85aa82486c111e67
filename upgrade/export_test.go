package upgrade

// WaitAttached waits until the work Attach started in the background
// (finishing an interrupted upgrade, upgrading a source changed while the
// core was down) is over, so a test that then changes a source binary
// knows that only the watcher or its own call acts on the change.
func (m *Manager) WaitAttached() { m.attaching.Wait() }
