"""The person's own profile: data, phone and e-mail, devices, password, deletion."""
