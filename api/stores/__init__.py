"""The stores and adapters: what Ahoy keeps (Table Storage) and whom it asks (Twilio's REST
API)."""
