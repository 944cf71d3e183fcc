"""A faithful fake of Twilio's Messages API for tests and the demo (see ``app``)."""
