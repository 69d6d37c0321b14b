"""The services: what each route does, built from the stores."""
