"""An in-process fake of the Lambda Cloud API (instances, launch, terminate) with its error shape."""

from __future__ import annotations

import uuid

from aiohttp import web


class FakeLambda:
    def __init__(self, key: str, *, boot_polls: int = 2, ip: str = "127.0.0.1"):
        self.key, self.boot_polls, self.ip = key, boot_polls, ip
        self.instances: dict[str, dict] = {}
        self.launched: list[dict] = []  # launch bodies
        self.terminated: list[str] = []
        self.lose_launch_answer = False  # create the instance, then answer 500 (the answer "got lost")
        self.refuse_launch = False  # 400 with Lambda's error shape
        self._polls: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/instances", self.list_instances)
        app.router.add_post("/instance-operations/launch", self.launch)
        app.router.add_post("/instance-operations/terminate", self.terminate)
        return app

    @staticmethod
    def error(status: int, code: str, message: str, suggestion: str | None = None):
        error = {"code": code, "message": message}
        if suggestion:
            error["suggestion"] = suggestion
        return web.json_response({"error": error}, status=status)

    @web.middleware
    async def _auth(self, request, handler):
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return self.error(401, "global/invalid-api-key", "API key was invalid, expired, or deleted.",
                              "Check your API key or create a new one, then try again.")
        return await handler(request)

    async def list_instances(self, request):
        for instance_id, instance in self.instances.items():
            if instance["status"] == "booting":
                self._polls[instance_id] = self._polls.get(instance_id, 0) + 1
                if self._polls[instance_id] >= self.boot_polls:
                    instance.update(status="active", ip=self.ip)
        return web.json_response({"data": list(self.instances.values())})

    async def launch(self, request):
        body = await request.json()
        self.launched.append(body)
        if self.refuse_launch:
            return self.error(400, "instance-operations/launch/insufficient-capacity",
                              "Not enough capacity to fulfill launch request.")
        missing = [k for k in ("instance_type_name", "region_name", "ssh_key_names") if k not in body]
        if missing:
            return self.error(400, "global/invalid-parameters", f"missing {', '.join(missing)}")
        instance_id = uuid.uuid4().hex
        self.instances[instance_id] = {"id": instance_id, "name": body.get("name"), "status": "booting", "ip": None,
                                       "region": {"name": body["region_name"]},
                                       "instance_type": {"name": body["instance_type_name"]},
                                       "ssh_key_names": body["ssh_key_names"]}
        if self.lose_launch_answer:
            return web.Response(status=500, text="upstream connect error")
        return web.json_response({"data": {"instance_ids": [instance_id]}})

    async def terminate(self, request):
        body = await request.json()
        done = []
        for instance_id in body.get("instance_ids", []):
            if instance_id not in self.instances:
                return self.error(404, "global/object-does-not-exist", f"instance {instance_id} not found")
            self.instances[instance_id]["status"] = "terminated"
            self.terminated.append(instance_id)
            done.append(self.instances[instance_id])
        return web.json_response({"data": {"terminated_instances": done}})

    def running(self) -> list[str]:
        return [i for i, inst in self.instances.items() if inst["status"] not in ("terminated", "terminating")]
