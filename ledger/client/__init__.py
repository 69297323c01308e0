"""The member side: keys, client-side encryption and signing, and (later) the HTTP SDK."""
