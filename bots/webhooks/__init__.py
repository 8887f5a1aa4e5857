"""What the webhook channels (Viber, WhatsApp, Telegram's webhook) share once a delivery arrives:
signature checks, repeats dropped, a bounded queue, the busy reply. Wired by `bots.server`."""
