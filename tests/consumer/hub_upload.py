#!/usr/bin/env python3
"""Upload a folder with the official `huggingface_hub` client, to check retort's Hub
stand-in (and so `retort push`) against the client the Hub is built for.

    HF_ENDPOINT=http://127.0.0.1:PORT HUB_TEST_TOKEN=... \
        python3 tests/consumer/hub_upload.py ORG/NAME FOLDER [MESSAGE]

Creates the dataset repository (`HfApi.create_repo`, exist_ok) and uploads FOLDER with
`HfApi.upload_folder`, which runs `create_commit`: preupload, the LFS batch API, PUT,
verify, and the ndjson commit. Xet storage is turned off (HF_HUB_DISABLE_XET=1) so the
client takes the LFS path, as it does against any Hub without Xet. The token is read
from $HUB_TEST_TOKEN and never printed. Prints the commit oid.

Exit 0: ok; 1: the upload failed; 2: bad usage or huggingface_hub missing (the message
gives the pip command).
"""

import os
import sys

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
try:
    from huggingface_hub import HfApi
except ImportError as e:
    print(f"missing package ({e}); install with: python3 -m pip install huggingface_hub", file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    repo, folder = sys.argv[1], sys.argv[2]
    message = sys.argv[3] if len(sys.argv) == 4 else "Upload with huggingface_hub"
    api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=os.environ["HUB_TEST_TOKEN"])
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo, repo_type="dataset", folder_path=folder, commit_message=message
        )
    except Exception as e:  # the client's own errors, shown as they are
        print(f"upload failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(info.oid)


if __name__ == "__main__":
    main()
