"""Getting a database's files: download (resumable, verified), safe zip extraction, and the
torchvision hub's weight files. Plumbing, with the standard library only: which files a
database needs, and from where, is its module's to say (respiro.data.databases).
"""
