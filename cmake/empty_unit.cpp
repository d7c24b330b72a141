// Placeholder so that a component without sources yet is still a valid static library.
namespace { [[maybe_unused]] int empty_unit_anchor = 0; }
