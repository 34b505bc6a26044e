"""shelfwatch: the shared configuration and the command line of the platform."""
