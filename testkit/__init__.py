"""Test helpers shared by the SQL logic tests and the Python tests."""
