"""dccd core library."""
