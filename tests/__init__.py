"""The suite as a package: `tests.support` must resolve here even where an installed
distribution ships a top-level `tests` package of its own (textfsm 2.1.1 does: a regular
package anywhere on sys.path wins over this folder as a namespace package)."""
